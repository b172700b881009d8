// Hostile inputs, item "use after recycle()": a recycled tensor, and every tensor that shared its storage, throws
// instead of returning whatever the next owner of the storage wrote; the next owner uses it freely.
import { describe, expect, it } from "vitest";
import { recycle, releaseRecycled, storagePool } from "../../src/core/pool.js";
import { MoeError } from "../../src/core/errors.js";
import { Tensor, tensor } from "../../src/core/tensor.js";
import { valueAndGrad } from "../../src/autodiff/grad.js";
import { mul, sum } from "../../src/ops/index.js";
import { reshape } from "../../src/ops/movement.js";

/** A float32 tensor large enough for the pool to keep its storage. */
const big = (): Tensor => new Tensor(new Float32Array(1 << 18).fill(1), [1 << 9, 1 << 9], "float32");
const USED = /^\[recycle\] Tensor\(float32\[.*\]\) used after recycle\(\)$/;

describe("a tensor used after recycle() throws", () => {
  it("reading data, item(), toArray() of a recycled tensor", () => {
    const t = tensor([1, 2, 3]);
    recycle(t);
    expect(() => t.data).toThrow(MoeError);
    expect(() => t.data).toThrow(USED);
    expect(() => t.toArray()).toThrow(USED);
    expect(() => sum(t)).toThrow(USED);
  });

  it("a reshape made before recycle(), and one made after it", () => {
    const t = tensor([1, 2, 3, 4]);
    const before = reshape(t, [2, 2]);
    recycle(t);
    expect(() => before.data).toThrow(USED);
    expect(() => reshape(t, [4, 1])).toThrow(USED);
  });

  it("recycling a view releases its base too", () => {
    const t = tensor([1, 2, 3, 4]);
    recycle(reshape(t, [2, 2]));
    expect(() => t.data).toThrow(USED);
  });

  it("gradients: a recycled gradient and the leaf copies over it", () => {
    const x = tensor([1, 2, 3]);
    const { grads } = valueAndGrad((a: Tensor) => sum(mul(a, a)))(x);
    const g = grads[0]!;
    const copy = g.sameStorage();
    recycle(grads);
    expect(() => copy.data).toThrow(USED);
    expect(x.toArray()).toEqual([1, 2, 3]);
  });

  it("the pool's next owner of the storage uses it; the old tensor does not see its values", () => {
    releaseRecycled();
    const old = big();
    const storage = old.data;
    recycle(old);
    const again = storagePool.take(1 << 18);
    expect(again).toBe(storage);
    again.fill(7);
    const mine = new Tensor(again, [1 << 18], "float32");
    expect(mine.data[5]).toBe(7);
    expect(() => old.data).toThrow(USED);
    recycle(mine);
    expect(() => mine.data).toThrow(USED);
    releaseRecycled();
  });

  it("recycling the same tensor twice in one call is fine; recycling it again later is an error", () => {
    const t = big();
    const view = reshape(t, [1 << 18]);
    recycle(t, [t, view, undefined]);
    expect(() => recycle(t)).toThrow(USED);
    releaseRecycled();
  });

  it("a bits-backed bfloat16 tensor", () => {
    const t = new Tensor(new Uint16Array([0x3f80, 0x4000]), [2], "bfloat16");
    recycle(t);
    expect(() => t.data).toThrow(/^\[recycle\] Tensor\(bfloat16\[2\]\) used after recycle\(\)$/);
    expect(() => t.bf16Bits).toThrow(MoeError);
  });

  it("tensors that were not recycled keep working", () => {
    const a = tensor([1, 2]);
    const b = tensor([3, 4]);
    recycle(a);
    expect(b.toArray()).toEqual([3, 4]);
    expect(tensor([5]).item()).toBe(5);
  });
});
