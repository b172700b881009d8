// Hostile inputs, item "errors, not garbage": constructors refuse ragged nesting, bad shapes and bad seeds
// (each used to return a tensor or key silently: [NaN, 3], shape [2, 4.5, 16], prngKey(NaN) == prngKey(0)).
import { describe, expect, it } from "vitest";
import { MoeError, ShapeError } from "../../src/core/errors.js";
import { full, tensor, zeros, type Tensor } from "../../src/core/tensor.js";
import { foldIn, normal, prngKey, randint, split, truncatedNormal, uniform } from "../../src/nn/random.js";

const key = prngKey(0);

describe("nested arrays must be rectangular, with numbers at the leaves", () => {
  const cases: [string, unknown, string][] = [
    ["[[1, 2], [3]]", [[1, 2], [3]], "[tensor] values[1] has 1 elements where values[0] has 2 (ragged nesting)"],
    [
      "[[[1], [2]], [[3], [4, 5]]]",
      [
        [[1], [2]],
        [[3], [4, 5]],
      ],
      "[tensor] values[1][1] has 2 elements where values[0][0] has 1 (ragged nesting)",
    ],
    ["[[1, 2], 3]", [[1, 2], 3], "[tensor] values[1] is 3 where values[0] is a list"],
    ["[1, [2]]", [1, [2]], "[tensor] values[1] is a list, not a number"],
    ['[[1, "2"]]', [[1, "2"]], '[tensor] values[0][1] is "2", not a number'],
    ["[1, null]", [1, null], "[tensor] values[1] is null, not a number"],
    [
      "[[1, 2], [3, undefined]]",
      [
        [1, 2],
        [3, undefined],
      ],
      "[tensor] values[1][1] is undefined, not a number",
    ],
  ];
  it.each(cases)("tensor(%s) throws, naming the position", (_, values, message) => {
    expect(() => tensor(values as number[])).toThrow(ShapeError);
    expect(() => tensor(values as number[])).toThrow(message);
  });

  it("rectangular nesting gives its shape and row-major values (including empty dimensions)", () => {
    const t = tensor([[[1, 2, 3]], [[4, 5, 6]]]);
    expect([t.shape, t.toArray()]).toEqual([
      [2, 1, 3],
      [1, 2, 3, 4, 5, 6],
    ]);
    expect(tensor([[], []]).shape).toEqual([2, 0]);
    expect(tensor(7).shape).toEqual([]);
    expect(
      tensor(
        [
          [1, 2],
          [3, 4],
        ],
        [4],
      ).shape,
    ).toEqual([4]);
  });

  it("nesting 200,000 deep is not a stack overflow", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(() => tensor(deep as number[])).not.toThrow(RangeError);
  });
});

describe("shapes must be non-negative integers", () => {
  const bad = [[2, 4.5, 16], [-1, 3], [NaN], [Infinity], [2 ** 53]];
  const makers: [string, (s: number[]) => Tensor][] = [
    ["normal", (s) => normal(key, s)],
    ["uniform", (s) => uniform(key, s)],
    ["truncatedNormal", (s) => truncatedNormal(key, s)],
    ["randint", (s) => randint(key, s, 0, 4)],
    ["tensor", (s) => tensor(new Float32Array(0), s)],
    ["zeros", (s) => zeros(s)],
    ["full", (s) => full(s, 1)],
  ];
  const cases = makers.flatMap(([name, make]) => bad.map((s) => [name, JSON.stringify(s), s, make] as const));
  it.each(cases)("%s(%s) throws a ShapeError naming the dimension", (name, _, shape, make) => {
    expect(() => make(shape)).toThrow(ShapeError);
    const axis = shape.findIndex((d) => !Number.isSafeInteger(d) || d < 0);
    expect(() => make(shape)).toThrow(new RegExp(`: dimension ${String(shape[axis])} at axis ${axis} is not a non-negative integer`));
  });

  it("the random constructors name themselves: [normal] shape [2,4.5,16]", () => {
    expect(() => normal(key, [2, 4.5, 16])).toThrow("[normal] shape [2,4.5,16]: dimension 4.5 at axis 1 is not a non-negative integer");
  });
});

describe("PRNG seeds must be safe integers", () => {
  it.each([NaN, 0.5, -1.5, Infinity, -Infinity, 2 ** 53, 1e300])("prngKey(%s) throws", (seed) => {
    expect(() => prngKey(seed)).toThrow(MoeError);
    expect(() => prngKey(seed)).toThrow(`[prngKey] seed ${seed} is not a safe integer`);
  });

  it("foldIn and split refuse non-integers too", () => {
    expect(() => foldIn(key, NaN)).toThrow("[foldIn] data NaN is not a safe integer");
    expect(() => split(key, 2.5)).toThrow("[split] count 2.5 is not a safe integer");
  });

  it("integer seeds keep their keys (negative ones included)", () => {
    expect(prngKey(0)).toEqual([0, 0]);
    expect(prngKey(2 ** 32 + 5)).toEqual([1, 5]);
    expect(prngKey(-1)).toEqual([0xffffffff, 0xffffffff]);
  });
});
