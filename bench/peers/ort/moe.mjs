// onnxruntime peer for `npm run bench`: onnxruntime's contrib operator com.microsoft.MoE on the CPU execution
// provider, run from Node through onnxruntime-node. Prints one JSON line.
//
//   node bench/peers/ort/moe.mjs T D H E K dtype threads runs      time it (warm-up 1 run, then median of `runs`)
//   node bench/peers/ort/moe.mjs --check                           tiny correctness check; exits 1 on a mismatch
//
// Install first with bench/peers/ort/setup.sh; without the package this prints {"peer":"onnxruntime","skipped":...}.
//
// The layer is moekit's Mixtral-style SwiGLU MoE (bench/moe-layer.ts):
//   logits = x · router                         router [D, E], float32
//   w, i   = top-k of softmax(logits), w /= Σw  (= softmax over the top-k logits)
//   y      = Σ_k w_k · (silu(x · W1[i_k]) ⊙ (x · W3[i_k])) · W2[i_k]      W1, W3 [E, D, H], W2 [E, H, D]
// The ONNX graph is  x ─MatMul(router)→ logits ─┐
//                    x ───────────────────────── MoE(activation_type="swiglu", swiglu_fusion=1, k=K,
//                                                     normalize_routing_weights=1, activation_alpha=1, activation_beta=0)
// and the weights are re-laid out the way the 1.30 CPU kernel reads them (docs/ContribOperators.md, moe_helper.h):
//   fc1_experts_weights [E, 2H, D]: row 2j = W1[e][:, j] (gate g), row 2j+1 = W3[e][:, j] (linear l)  (interleaved)
//   fc2_experts_weights [E, D, H] = W2[e]ᵀ
// so the kernel's  G·sigmoid(alpha·G)·(L + beta)  with alpha=1, beta=0 and no swiglu_limit is silu(g)·l.
// The kernel itself does softmax over all E router logits, partial-sorts the top k and renormalises.
//
// dtype float32: everything float32. dtype float16 / bfloat16: expert weights in that dtype; the graph input and
// output stay float32 (as moekit's activations do), the router MatMul stays float32, and x, the logits and y are
// Cast to/from the MoE's type around the node (the MoE op has a single type T for input, router_probs and weights).
// dtype int8 / int4: com.microsoft.QMoE instead (expert_weight_bits 8 / 4, float32 activations), the same layouts
// as uint8 codes with a float32 scale per (expert, output row): the 1.30 CPU kernel dequantizes
// scale · (code − 128) (8 bits) or scale · (nibble − 8) (4 bits, low nibble first). The codes follow moekit's
// quantizeWeights rule (scale = absmax / (2^(b−1) − 0.5), clip to ±(2^(b−1) − 1), round half to even), so both
// layers run the same dequantized weights.
import { performance } from "node:perf_hooks";
import { TextEncoder } from "node:util";

// ---------------------------------------------------------------- minimal protobuf encoder (onnx.proto3 subset)
// A message is a list of byte chunks; large raw_data arrays are kept by reference until the one final copy.
class Msg {
  constructor() {
    this.chunks = [];
    this.length = 0;
  }
  push(u8) {
    this.chunks.push(u8);
    this.length += u8.length;
    return this;
  }
  varint(n) {
    // n: non-negative integer below 2^53 (arithmetic, not 32-bit bit operators)
    const out = [];
    let v = n;
    while (v >= 128) {
      out.push((v % 128) | 128);
      v = Math.floor(v / 128);
    }
    out.push(v);
    return this.push(Uint8Array.from(out));
  }
  tag(field, wire) {
    return this.varint(field * 8 + wire);
  }
  int(field, n) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`varint field ${field}: ${n}`);
    return this.tag(field, 0).varint(n);
  }
  float(field, x) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, x, true);
    return this.tag(field, 5).push(b);
  }
  bytes(field, u8) {
    return this.tag(field, 2).varint(u8.length).push(u8);
  }
  str(field, s) {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field, m) {
    this.tag(field, 2).varint(m.length);
    for (const c of m.chunks) this.push(c);
    return this;
  }
  finish() {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

// onnx TensorProto.DataType
const ONNX_DTYPE = { float32: 1, uint8: 2, float16: 10, bfloat16: 16 };
// the QMoE dtypes: weight bits
const QBITS = { int8: 8, int4: 4 };
// onnx AttributeProto.AttributeType
const ATTR = { FLOAT: 1, INT: 2, STRING: 3 };

function attribute(name, value) {
  // AttributeProto{name=1, f=2, i=3, s=4, type=20}
  const m = new Msg().str(1, name);
  if (typeof value === "string") return m.str(4, value).int(20, ATTR.STRING);
  if (Number.isInteger(value) && value >= 0) return m.int(3, value).int(20, ATTR.INT);
  throw new Error(`attribute ${name}: non-negative integers or strings only (attrFloat for floats)`);
}

function attrFloat(name, x) {
  return new Msg().str(1, name).float(2, x).int(20, ATTR.FLOAT);
}

function node(opType, inputs, outputs, name, attrs = [], domain = "") {
  // NodeProto{input=1, output=2, name=3, op_type=4, attribute=5, domain=7}
  const m = new Msg();
  for (const i of inputs) m.str(1, i); // "" marks an absent optional input
  for (const o of outputs) m.str(2, o);
  m.str(3, name).str(4, opType);
  for (const a of attrs) m.msg(5, a);
  if (domain) m.str(7, domain);
  return m;
}

function tensorProto(name, dtype, dims, raw) {
  // TensorProto{dims=1, data_type=2, name=8, raw_data=9}; raw_data is little-endian
  const m = new Msg();
  for (const d of dims) m.int(1, d);
  m.int(2, ONNX_DTYPE[dtype]).str(8, name);
  return m.bytes(9, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
}

function valueInfo(name, dtype, dims) {
  // ValueInfoProto{name=1, type=2}; TypeProto{tensor_type=1}; Tensor{elem_type=1, shape=2};
  // TensorShapeProto{dim=1}; Dimension{dim_value=1}
  const shape = new Msg();
  for (const d of dims) shape.msg(1, new Msg().int(1, d));
  const tensorType = new Msg().int(1, ONNX_DTYPE[dtype]).msg(2, shape);
  return new Msg().str(1, name).msg(2, new Msg().msg(1, tensorType));
}

/** The ModelProto bytes for the layer at shape s, expert weights already in ORT layout and `dtype`. */
function buildModel(s, dtype, w) {
  const { T, D, H, E, K } = s;
  const bits = QBITS[dtype];
  const half = dtype !== "float32" && bits === undefined;
  const nodes = [];
  const moeType = ONNX_DTYPE[dtype];
  nodes.push(node("MatMul", ["x", "router_w"], ["logits"], "router"));
  let moeX = "x";
  let moeLogits = "logits";
  let moeY = "y";
  if (half) {
    nodes.push(node("Cast", ["x"], ["x_h"], "cast_x", [attribute("to", moeType)]));
    nodes.push(node("Cast", ["logits"], ["logits_h"], "cast_logits", [attribute("to", moeType)]));
    [moeX, moeLogits, moeY] = ["x_h", "logits_h", "y_h"];
  }
  // MoE inputs: input, router_probs, fc1_experts_weights, fc1_experts_bias, fc2_experts_weights (no biases, no FC3);
  // QMoE: input, router_probs, fc1 weights, fc1 scales, fc1 bias, fc2 weights, fc2 scales
  nodes.push(
    node(
      bits === undefined ? "MoE" : "QMoE",
      bits === undefined ? [moeX, moeLogits, "fc1_w", "", "fc2_w"] : [moeX, moeLogits, "fc1_w", "fc1_s", "", "fc2_w", "fc2_s"],
      [moeY],
      "moe",
      [
        ...(bits === undefined ? [] : [attribute("expert_weight_bits", bits)]),
        attribute("activation_type", "swiglu"),
        attribute("swiglu_fusion", 1),
        attribute("k", K),
        attribute("normalize_routing_weights", 1),
        attribute("use_sparse_mixer", 0),
        attrFloat("activation_alpha", 1.0),
        attrFloat("activation_beta", 0.0),
      ],
      "com.microsoft",
    ),
  );
  if (half) nodes.push(node("Cast", ["y_h"], ["y"], "cast_y", [attribute("to", ONNX_DTYPE.float32)]));

  // GraphProto{node=1, name=2, initializer=5, input=11, output=12}
  const graph = new Msg();
  for (const n of nodes) graph.msg(1, n);
  graph.str(2, "moekit_peer_moe");
  graph.msg(5, tensorProto("router_w", "float32", [D, E], w.router));
  if (bits === undefined) {
    graph.msg(5, tensorProto("fc1_w", dtype, [E, 2 * H, D], w.fc1));
    graph.msg(5, tensorProto("fc2_w", dtype, [E, D, H], w.fc2));
  } else {
    const pack = 8 / bits;
    graph.msg(5, tensorProto("fc1_w", "uint8", [E, 2 * H, D / pack], w.fc1.codes));
    graph.msg(5, tensorProto("fc1_s", "float32", [E, 2 * H], w.fc1.scales));
    graph.msg(5, tensorProto("fc2_w", "uint8", [E, D, H / pack], w.fc2.codes));
    graph.msg(5, tensorProto("fc2_s", "float32", [E, D], w.fc2.scales));
  }
  graph.msg(11, valueInfo("x", "float32", [T, D]));
  graph.msg(12, valueInfo("y", "float32", [T, D]));

  // ModelProto{ir_version=1, producer_name=2, graph=7, opset_import=8}; OperatorSetIdProto{domain=1, version=2}
  const model = new Msg().int(1, 10).str(2, "moekit-bench-peer");
  model.msg(7, graph);
  model.msg(8, new Msg().str(1, "").int(2, 21));
  model.msg(8, new Msg().str(1, "com.microsoft").int(2, 1));
  return model.finish();
}

// ---------------------------------------------------------------- data (same generator as bench/moe-layer.ts)
/** xorshift32 uniform(-a, a) stream, as moekit's bench `fill` draws it. */
function uniformStream(a, seed) {
  let st = seed >>> 0 || 1;
  return () => {
    st ^= st << 13;
    st ^= st >>> 17;
    st ^= st << 5;
    return ((st >>> 0) / 4294967296 - 0.5) * 2 * a;
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toBf16Bits(x) {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return 0x7fc0; // NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff; // round to nearest even
}

function toF16Bits(x) {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h; // a carry into the exponent is the correct rounding (up to inf)
}

function fromF16Bits(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function fromBf16Bits(h) {
  u32[0] = h << 16;
  return f32[0];
}

const ENCODE = { float32: null, float16: toF16Bits, bfloat16: toBf16Bits };
const DECODE = { float32: (x) => x, float16: fromF16Bits, bfloat16: fromBf16Bits };

/**
 * Draws moekit's weights (W1 = wi0 [E,D,H], W3 = wi1 [E,D,H], W2 = wo [E,H,D], router [D,E]) in moekit's order and
 * scatters them straight into ORT's layout, rounded to `dtype`. `keep` also returns moekit-layout float64 copies of
 * the values actually stored (for the reference).
 */
function makeWeights(s, dtype, { scale = 1, keep = false } = {}) {
  const { D, H, E } = s;
  const uD = Math.sqrt(3 / D) * scale;
  const uH = Math.sqrt(3 / H) * scale;
  const enc = ENCODE[dtype];
  const dec = DECODE[dtype];
  const Arr = dtype === "float32" ? Float32Array : Uint16Array;
  const router = new Float32Array(D * E);
  const rr = uniformStream(uD, 1);
  for (let i = 0; i < D * E; i++) router[i] = rr();
  const fc1 = new Arr(E * 2 * H * D);
  const fc2 = new Arr(E * D * H);
  const ref = keep
    ? {
        router: Float64Array.from(router),
        w1: new Float64Array(E * D * H),
        w3: new Float64Array(E * D * H),
        w2: new Float64Array(E * H * D),
      }
    : null;
  const put = (arr, idx, v) => {
    if (enc) {
      const bits = enc(v);
      arr[idx] = bits;
      return dec(bits);
    }
    arr[idx] = v;
    return arr[idx];
  };
  // W1 (gate) -> fc1[e][2j][d], W3 (linear) -> fc1[e][2j+1][d]
  for (const [seed, parity, name] of [
    [2, 0, "w1"],
    [3, 1, "w3"],
  ]) {
    const r = uniformStream(uD, seed);
    for (let e = 0; e < E; e++)
      for (let d = 0; d < D; d++)
        for (let j = 0; j < H; j++) {
          const stored = put(fc1, (e * 2 * H + 2 * j + parity) * D + d, r());
          if (ref) ref[name][(e * D + d) * H + j] = stored;
        }
  }
  // W2 [E,H,D] -> fc2[e][d][j] (transposed)
  const r2 = uniformStream(uH, 4);
  for (let e = 0; e < E; e++)
    for (let j = 0; j < H; j++)
      for (let d = 0; d < D; d++) {
        const stored = put(fc2, (e * D + d) * H + j, r2());
        if (ref) ref.w2[(e * H + j) * D + d] = stored;
      }
  return { router, fc1, fc2, ref };
}

/**
 * Rows [rows, k] of float32 weights as QMoE's uint8 codes (zero point 128, or 8 with two nibbles per byte, low
 * first) with a float32 scale per row, by moekit's quantizeWeights rule; `deq` gets the values the kernel computes.
 */
function quantizeRows(w, rows, k, bits, deq) {
  const Q = 2 ** (bits - 1) - 0.5;
  const zero = 2 ** (bits - 1);
  const pack = 8 / bits;
  const codes = new Uint8Array((rows * k) / pack);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let p = 0; p < k; p++) amax = Math.max(amax, Math.abs(w[r * k + p]));
    const sc = Math.fround(amax === 0 ? 1 : amax / Q);
    scales[r] = sc;
    for (let p = 0; p < k; p++) {
      const x = w[r * k + p];
      const v = amax === 0 ? 0 : Math.abs(x) === amax ? Math.sign(x) * Q : x / (amax / Q);
      const vc = Math.min(Q - 0.5, Math.max(-(Q - 0.5), v));
      const f = Math.floor(vc);
      const q = (vc - f > 0.5 || (vc - f === 0.5 && f % 2 !== 0) ? f + 1 : f) + zero; // half to even
      if (pack === 1) codes[r * k + p] = q;
      else codes[(r * k + p) >> 1] |= q << ((p & 1) * 4);
      if (deq) deq[r * k + p] = Math.fround(sc * (q - zero));
    }
  }
  return { codes, scales };
}

/** makeWeights for QMoE: the float32 weights quantized per (expert, output row); `keep`: the dequantized reference. */
function makeQuantizedWeights(s, dtype, opts = {}) {
  const { D, H, E } = s;
  const w = makeWeights(s, "float32", { ...opts, keep: false });
  const bits = QBITS[dtype];
  const d1 = opts.keep ? new Float32Array(E * 2 * H * D) : null;
  const d2 = opts.keep ? new Float32Array(E * D * H) : null;
  const out = {
    router: w.router,
    fc1: quantizeRows(w.fc1, E * 2 * H, D, bits, d1),
    fc2: quantizeRows(w.fc2, E * D, H, bits, d2),
    ref: null,
  };
  if (opts.keep) {
    const ref = {
      router: Float64Array.from(w.router),
      w1: new Float64Array(E * D * H),
      w3: new Float64Array(E * D * H),
      w2: new Float64Array(E * H * D),
    };
    for (let e = 0; e < E; e++)
      for (let j = 0; j < H; j++)
        for (let d = 0; d < D; d++) {
          ref.w1[(e * D + d) * H + j] = d1[(e * 2 * H + 2 * j) * D + d];
          ref.w3[(e * D + d) * H + j] = d1[(e * 2 * H + 2 * j + 1) * D + d];
          ref.w2[(e * H + j) * D + d] = d2[(e * D + d) * H + j];
        }
    out.ref = ref;
  }
  return out;
}

function makeInput(s, scale = 1) {
  const r = uniformStream(Math.sqrt(3) * scale, 5);
  const x = new Float32Array(s.T * s.D);
  for (let i = 0; i < x.length; i++) x[i] = r();
  return x;
}

// ---------------------------------------------------------------- naive float64 reference
function referenceMoe(s, x, ref) {
  const { T, D, H, E, K } = s;
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    const logits = new Float64Array(E);
    for (let e = 0; e < E; e++) {
      let acc = 0;
      for (let d = 0; d < D; d++) acc += x[t * D + d] * ref.router[d * E + e];
      logits[e] = acc;
    }
    const mx = Math.max(...logits);
    const p = Array.from(logits, (l) => Math.exp(l - mx));
    const z = p.reduce((a, b) => a + b, 0);
    const probs = p.map((v) => v / z);
    const top = [...probs.keys()].sort((a, b) => probs[b] - probs[a] || a - b).slice(0, K);
    const wsum = top.reduce((a, e) => a + probs[e], 0);
    for (const e of top) {
      const w = probs[e] / wsum;
      const h = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        let g = 0;
        let l = 0;
        for (let d = 0; d < D; d++) {
          g += x[t * D + d] * ref.w1[(e * D + d) * H + j];
          l += x[t * D + d] * ref.w3[(e * D + d) * H + j];
        }
        h[j] = (g / (1 + Math.exp(-g))) * l;
      }
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = 0; j < H; j++) acc += h[j] * ref.w2[(e * H + j) * D + d];
        y[t * D + d] += w * acc;
      }
    }
  }
  return y;
}

// ---------------------------------------------------------------- onnxruntime
async function loadOrt() {
  try {
    return await import("onnxruntime-node");
  } catch (e) {
    return { error: `onnxruntime-node not installed (run bench/peers/ort/setup.sh): ${String(e.message ?? e).split("\n")[0]}` };
  }
}

async function createSession(ort, s, dtype, w, threads) {
  const bytes = buildModel(s, dtype, w);
  return ort.InferenceSession.create(bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
}

function oneLine(e) {
  return String(e?.message ?? e)
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 300);
}

async function check(ort) {
  const s = { T: 4, D: 8, H: 12, E: 4, K: 2 };
  // inputs scaled up so the routing is far from uniform and the SwiGLU is in its non-linear range
  const x = makeInput(s, 2);
  const x64 = Float64Array.from(x);
  // max |ORT - ref| must be <= tol * max|ref|
  // int8 / int4: against the dequantized weights the kernel computes with (float32 arithmetic, as float32)
  const tols = { float32: 1e-5, float16: 2e-2, bfloat16: 5e-2, int8: 1e-5, int4: 1e-5 };
  let ok = true;
  for (const dtype of ["float32", "float16", "bfloat16", "int8", "int4"]) {
    const opts = { scale: 2, keep: true };
    const w = QBITS[dtype] === undefined ? makeWeights(s, dtype, opts) : makeQuantizedWeights(s, dtype, opts);
    let y;
    try {
      const sess = await createSession(ort, s, dtype, w, 1);
      const out = await sess.run({ x: new ort.Tensor("float32", x, [s.T, s.D]) });
      y = out.y.data;
      await sess.release();
    } catch (e) {
      // float32 must work; the half types are optional in the CPU kernel
      const res = { peer: "onnxruntime", check: dtype, supported: false, reason: oneLine(e) };
      console.log(JSON.stringify(res));
      if (dtype === "float32") ok = false;
      continue;
    }
    // reference uses the x that the MoE actually sees (rounded to dtype for the half types); router logits are
    // float32 MatMul in the graph, then Cast, which the reference's float64 logits approximate
    const xs = dtype === "float32" || QBITS[dtype] !== undefined ? x64 : Float64Array.from(x, (v) => DECODE[dtype](ENCODE[dtype](v)));
    const ref = referenceMoe(s, xs, w.ref);
    let maxErr = 0;
    let maxRef = 0;
    for (let i = 0; i < ref.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(y[i] - ref[i]));
      maxRef = Math.max(maxRef, Math.abs(ref[i]));
    }
    const pass = maxErr <= tols[dtype] * maxRef;
    if (!pass) ok = false;
    console.log(
      JSON.stringify({
        peer: "onnxruntime",
        check: dtype,
        supported: true,
        pass,
        max_abs_err: maxErr,
        max_abs_ref: maxRef,
        rel_err: maxErr / maxRef,
        tol: tols[dtype],
      }),
    );
  }
  return ok;
}

async function bench(ort, args) {
  const [T, D, H, E, K] = args.slice(0, 5).map((v) => parseInt(v, 10));
  const dtype = args[5] ?? "float32";
  const threads = parseInt(args[6] ?? "1", 10);
  const runs = parseInt(args[7] ?? "3", 10);
  const s = { T, D, H, E, K };
  const bits = QBITS[dtype];
  if (![T, D, H, E, K, threads, runs].every((n) => Number.isInteger(n) && n > 0) || !(dtype in ONNX_DTYPE || bits !== undefined))
    throw new Error("usage: node moe.mjs T D H E K float32|float16|bfloat16|int8|int4 threads runs   |   node moe.mjs --check");
  const base = {
    peer: "onnxruntime",
    op: bits === undefined ? "MoE" : "QMoE",
    version: ort.env?.versions?.node ?? "unknown",
    dtype,
    threads,
  };
  const fc1Bytes = E * 2 * H * D * (bits !== undefined ? bits / 8 : dtype === "float32" ? 4 : 2);
  if (fc1Bytes * 1.5 + D * E * 4 > 2 ** 31 - 4096)
    return { ...base, skipped: "model over protobuf's 2 GiB limit (weights are in-model initializers)" };
  let w = bits === undefined ? makeWeights(s, dtype) : makeQuantizedWeights(s, dtype);
  let session;
  try {
    session = await createSession(ort, s, dtype, w, threads);
  } catch (e) {
    return { ...base, skipped: `unsupported: ${oneLine(e)}` };
  }
  w = null; // the session holds its own copy of the initializers
  const feeds = { x: new ort.Tensor("float32", makeInput(s), [T, D]) };
  const times = [];
  try {
    for (let i = 0; i < runs + 1; i++) {
      const t0 = performance.now();
      await session.run(feeds);
      const t1 = performance.now();
      if (i > 0) times.push((t1 - t0) / 1000);
    }
  } catch (e) {
    return { ...base, skipped: `run failed: ${oneLine(e)}` };
  }
  await session.release();
  const sorted = [...times].sort((a, b) => a - b);
  const m = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
  return { ...base, median_s: median, runs, runs_s: times };
}

async function main() {
  const args = process.argv.slice(2);
  const ort = await loadOrt();
  if (ort.error) {
    console.log(JSON.stringify({ peer: "onnxruntime", skipped: ort.error }));
    return 0;
  }
  if (args[0] === "--check") return (await check(ort)) ? 0 : 1;
  console.log(JSON.stringify(await bench(ort, args)));
  return 0;
}

process.exitCode = await main();
