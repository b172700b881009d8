// The fused MoE FFN on the native kernels: a FusedMoeFfn (src/moe/fused-ffn.ts) replacing
// gatherSorted → expertFfn → unpermute with one native forward (and, under autodiff, one native backward via
// customVjp). Install with setFusedMoeFfn(nativeMoeFfn). It returns undefined, so that the reference composition
// runs, for what it does not cover: cfg.dtype other than float32, weights other than float32 / bfloat16, an
// activation other than linear, silu/swish, gelu (tanh), sigmoid, relu, or routing whose group sizes do not
// cover every routed row.
//
// bfloat16 weights go to the kernels as bf16 bits: converted once per weight storage (a WeakMap keyed by the
// tensor's data array, so fresh Tensor objects sharing storage, e.g. autodiff leaves, hit the cache; tensors are
// immutable by convention) and never widened to fp32 copies in TypeScript. With bf16 weights the kernels round the
// activations to bf16 on the dpbf16 / amx paths (see native/include/moe-kernels.h), so results match the reference
// to bf16 precision rather than fp32.
import { customVjp } from "../../autodiff/custom-vjp.js";
import { isRecording } from "../../autodiff/graph.js";
import { bf16BitsRef } from "../../core/dtype.js";
import { MoeError } from "../../core/errors.js";
import { storagePool } from "../../core/pool.js";
import { shapesEqual } from "../../core/shape.js";
import { Tensor } from "../../core/tensor.js";
import type { MoeConfig } from "../../moe/config.js";
import type { ExpertWeights } from "../../moe/experts.js";
import type { FusedMoeFfn } from "../../moe/fused-ffn.js";
import type { Routed } from "../../moe/permute.js";
import { binding, type NativeBinding, type NativeWeights } from "./binding.js";

/** moe_activation_t of the kernels by MaxText activation name (gelu is the tanh approximation, as src/ops/nn.ts). */
const ACTIVATIONS: Readonly<Record<string, number>> = { linear: 0, silu: 1, swish: 1, gelu: 2, sigmoid: 3, relu: 4 };

/** Activations the fused path supports. */
export const NATIVE_FFN_ACTIVATIONS: readonly string[] = Object.keys(ACTIVATIONS);

const bf16Cache = new WeakMap<Float32Array, Uint16Array>();

/** bf16 bit patterns of a bfloat16 tensor's values (exact for bf16-valued data), cached; converted natively. */
export function bf16Bits(t: Tensor): Uint16Array {
  if (t.bf16Bits !== undefined) return t.bf16Bits;
  const data = t.data as Float32Array;
  let bits = bf16Cache.get(data);
  if (bits === undefined) {
    if (binding === undefined) {
      bits = bf16BitsRef(data);
    } else {
      bits = new Uint16Array(data.length);
      binding.f32ToBf16Bits(data, bits);
    }
    bf16Cache.set(data, bits);
  }
  return bits;
}

interface Plan {
  T: number;
  D: number;
  K: number;
  E: number;
  H: number;
  activation: number;
  clampLimit: number;
  llama4: boolean;
  bf16: boolean;
  bias: boolean;
}

const isF32 = (t: Tensor | undefined): boolean => t !== undefined && t.dtype === "float32" && t.data instanceof Float32Array;
// (a bits-backed bfloat16 weight goes to the kernels as its bits, never widened)
const isWeight = (t: Tensor, bf16: boolean): boolean => t.dtype === (bf16 ? "bfloat16" : "float32") && (t.bf16Bits !== undefined || t.data instanceof Float32Array);
const isBias = (t: Tensor | undefined): boolean => t !== undefined && (t.dtype === "float32" || t.dtype === "bfloat16") && t.data instanceof Float32Array;

/** What the kernels need, or undefined when the fused path does not apply. */
function plan(cfg: MoeConfig, r: Routed, w: ExpertWeights, B: number, S: number): Plan | undefined {
  if (cfg.dtype !== "float32") return undefined;
  const activation = ACTIVATIONS[cfg.mlpActivations[0] ?? ""];
  if (activation === undefined) return undefined;
  const x = r.inputs_TD;
  if (!isF32(x) || x.shape.length !== 2) return undefined;
  const [T, D] = x.shape as [number, number];
  const K = cfg.numExpertsPerTok;
  if (T !== B * S || w.wi0.shape.length !== 3) return undefined;
  const [E, , H] = w.wi0.shape as [number, number, number];
  const bf16 = w.wi0.dtype === "bfloat16";
  if (!isWeight(w.wi0, bf16) || !isWeight(w.wi1, bf16) || !isWeight(w.wo, bf16)) return undefined;
  if (!shapesEqual(w.wi0.shape, [E, D, H]) || !shapesEqual(w.wi1.shape, [E, D, H]) || !shapesEqual(w.wo.shape, [E, H, D])) return undefined;
  const llama4 = cfg.decoderBlock === "llama4";
  if (!llama4 && (!isF32(r.weights_BSK) || r.weights_BSK.size !== T * K)) return undefined;
  const order = r.order_R;
  const gs = r.groupSize_E;
  if (!(order.data instanceof Int32Array) || order.size !== T * K) return undefined;
  if (!(gs.data instanceof Int32Array) || gs.size !== E) return undefined;
  let rows = 0;
  for (const g of gs.data) rows += g;
  if (rows !== T * K) return undefined;
  const bias = cfg.mlpBias;
  if (bias) {
    if (!isBias(w.wi0Bias) || !isBias(w.wi1Bias) || !isBias(w.woBias)) return undefined;
    if (w.wi0Bias!.size !== E * H || w.wi1Bias!.size !== E * H || w.woBias!.size !== E * D) return undefined;
  }
  const clampLimit = cfg.decoderBlock === "gpt_oss" ? cfg.mlpActivationsLimit : 0;
  if (!(clampLimit >= 0) || !Number.isFinite(clampLimit)) return undefined;
  return { T, D, K, E, H, activation, clampLimit, llama4, bf16, bias };
}

const weightsOf = (t: Tensor, bf16: boolean): NativeWeights => (bf16 ? bf16Bits(t) : (t.data as Float32Array));

function f32Data(t: Tensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
}

function run(b: NativeBinding, p: Plan, r: Routed, w: ExpertWeights, B: number, S: number): Tensor {
  const { T, D, K, E, H } = p;
  const R = T * K;
  const x = r.inputs_TD.data as Float32Array;
  const order = r.order_R.data as Int32Array;
  const groupSizes = r.groupSize_E.data as Int32Array;
  const combine = p.llama4 ? null : (r.weights_BSK.data as Float32Array);
  const wi0 = weightsOf(w.wi0, p.bf16);
  const wi1 = weightsOf(w.wi1, p.bf16);
  const wo = weightsOf(w.wo, p.bf16);
  // bf16 biases are Float32Arrays of bf16 values: exact as fp32
  const b0 = p.bias ? (w.wi0Bias!.data as Float32Array) : null;
  const b1 = p.bias ? (w.wi1Bias!.data as Float32Array) : null;
  const bo = p.bias ? (w.woBias!.data as Float32Array) : null;
  const common = { T, D, K, E, H, x, order, groupSizes, w: combine, wi0, wi1, wo, activation: p.activation, clampLimit: p.clampLimit };
  const outShape = [B, S, D];

  const args: Tensor[] = [r.inputs_TD];
  if (!p.llama4) args.push(r.weights_BSK);
  args.push(w.wi0, w.wi1, w.wo);
  if (p.bias) args.push(w.wi0Bias!, w.wi1Bias!, w.woBias!);
  const training = isRecording() && args.some((t) => t.node !== undefined);

  if (!training) {
    const y = new Float32Array(T * D);
    b.ffnFwd({ ...common, b0, b1, bo, y, resAct: null, resH0: null, resH1: null, resO: null });
    return new Tensor(y, outShape, "float32");
  }

  const fused = customVjp(
    (..._inputs: Tensor[]) => {
      const res: Res = { act: storagePool.take(R * H), h0: storagePool.take(R * H), h1: storagePool.take(R * H), o: storagePool.take(R * D), consumed: false };
      const y = new Float32Array(T * D);
      b.ffnFwd({ ...common, b0, b1, bo, y, resAct: res.act, resH0: res.h0, resH1: res.h1, resO: res.o });
      return { out: new Tensor(y, outShape, "float32"), res };
    },
    (res: Res, ct: Tensor) => {
      if (res.consumed) throw new MoeError("[moe_ffn] the native fused FFN's residuals were consumed by an earlier backward pass of this graph");
      // gradients only for the inputs autodiff tracks (an untracked weight skips its matmul)
      // (the kernels write every element of every output, so recycled storage needs no clearing)
      const want = (t: Tensor | undefined, n: number): Float32Array | null => (t?.node !== undefined ? storagePool.take(n) : null);
      const dx = storagePool.take(T * D);
      const dw = p.llama4 ? null : want(r.weights_BSK, R);
      const dwi0 = want(w.wi0, E * D * H);
      const dwi1 = want(w.wi1, E * D * H);
      const dwo = want(w.wo, E * H * D);
      const db0 = p.bias ? want(w.wi0Bias, E * H) : null;
      const db1 = p.bias ? want(w.wi1Bias, E * H) : null;
      const dbo = p.bias ? want(w.woBias, E * D) : null;
      b.ffnBwd({ ...common, dy: f32Data(ct), resAct: res.act, resH0: res.h0, resH1: res.h1, resO: res.o, dx, dw, dwi0, dwi1, dwo, db0, db1, dbo });
      res.consumed = true;
      for (const buf of [res.act, res.h0, res.h1, res.o]) storagePool.give(buf);
      // float32 cotangents; the backward sweep casts each to its input's dtype (bf16 weights: as the reference's cast VJP)
      const grad = (g: Float32Array | null, shape: readonly number[]): Tensor | undefined => (g === null ? undefined : new Tensor(g, shape, "float32"));
      const grads: (Tensor | undefined)[] = [new Tensor(dx, [T, D], "float32")];
      if (!p.llama4) grads.push(grad(dw, r.weights_BSK.shape));
      grads.push(grad(dwi0, [E, D, H]), grad(dwi1, [E, D, H]), grad(dwo, [E, H, D]));
      if (p.bias) grads.push(grad(db0, w.wi0Bias!.shape), grad(db1, w.wi1Bias!.shape), grad(dbo, w.woBias!.shape));
      return grads;
    },
  );
  return fused(...args);
}

interface Res {
  act: Float32Array;
  h0: Float32Array;
  h1: Float32Array;
  o: Float32Array;
  /** set once a backward pass has used (and recycled) the buffers */
  consumed: boolean;
}

function makeFfn(b: NativeBinding): FusedMoeFfn {
  return (cfg, r, w, B, S) => {
    const p = plan(cfg, r, w, B, S);
    return p === undefined ? undefined : run(b, p, r, w, B, S);
  };
}

/** The native fused MoE FFN (install with setFusedMoeFfn), or undefined when the addon is unavailable. */
export const nativeMoeFfn: FusedMoeFfn | undefined = binding === undefined ? undefined : makeFfn(binding);

/** Whether `nativeMoeFfn` would take this call (for tests and diagnostics). */
export function nativeMoeFfnApplies(cfg: MoeConfig, r: Routed, w: ExpertWeights, batchSize: number, sequenceLength: number): boolean {
  return binding !== undefined && plan(cfg, r, w, batchSize, sequenceLength) !== undefined;
}
