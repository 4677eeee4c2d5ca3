import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RopeScalingLlama3 } from '../../src/model/config.ts';
import { ropeInvFreq } from '../../src/model/rope.ts';

// Expected values: LlamaRotaryEmbedding(config).inv_freq from transformers 5.24 / torch 2.13 on CPU,
// printed with .tolist() (each is an exact float32).
function llama3(factor: number, low: number, high: number, original: number): RopeScalingLlama3 {
  return { type: 'llama3', factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original };
}

function assertEntries(actual: Float32Array, expected: Record<number, number>) {
  for (const [i, value] of Object.entries(expected)) {
    assert.equal(actual[Number(i)], Math.fround(value), `inv_freq[${i}]`);
  }
}

describe('ropeInvFreq', () => {
  test('default RoPE (theta 10000, head_dim 64) matches transformers bit for bit', () => {
    const inv = ropeInvFreq({ headDim: 64, ropeTheta: 10000, ropeScaling: null });
    assert.equal(inv.length, 32);
    assertEntries(inv, {
      0: 1.0,
      1: 0.7498942017555237,
      4: 0.3162277638912201,
      8: 0.10000000149011612,
      16: 0.009999999776482582,
      31: 0.0001333521504420787,
    });
  });

  test('llama3 scaling as in Llama 3.1 (factor 8, head_dim 128): high, blended and low bands', () => {
    const inv = ropeInvFreq({ headDim: 128, ropeTheta: 500000, ropeScaling: llama3(8, 1, 4, 8192) });
    assert.equal(inv.length, 64);
    assertEntries(inv, {
      0: 1.0, // wavelength under 2048: kept
      16: 0.03760603070259094,
      28: 0.0032114461064338684,
      29: 0.0021665706299245358, // 2048..8192: blended
      31: 0.0008567514596506953,
      34: 0.0001785077911335975,
      35: 9.556212171446532e-5, // over 8192: divided by factor
      48: 6.647869668086059e-6,
      63: 3.068925877869333e-7,
    });
  });

  test('llama3 scaling as in Llama 3.2 (factor 32, head_dim 64)', () => {
    const inv = ropeInvFreq({ headDim: 64, ropeTheta: 500000, ropeScaling: llama3(32, 1, 4, 8192) });
    assertEntries(inv, {
      1: 0.663601279258728,
      14: 0.0032114461064338684,
      15: 0.0012905480107292533,
      16: 0.000429556705057621,
      17: 9.708286233944818e-5,
      31: 9.418306490260875e-8,
    });
  });

  test('llama3 scaling with unusual factors matches every entry', () => {
    const inv = ropeInvFreq({ headDim: 48, ropeTheta: 12345.6, ropeScaling: llama3(3.5, 1.5, 5, 300) });
    const expected = [
      1.0, 0.6753366589546204, 0.4560796022415161, 0.30800729990005493, 0.20800858736038208, 0.14047583937644958,
      0.08576181530952454, 0.03868971765041351, 0.017358902841806412, 0.008348624221980572, 0.0056381323374807835,
      0.0038076366763561964, 0.002571436809375882, 0.001736585283651948, 0.0011727801756933331, 0.0007920212228782475,
      0.0005348809063434601, 0.00036122481105849147, 0.00024394832144025713, 0.00016474720905534923,
      0.000111259869299829, 7.513786113122478e-5, 5.0743339670589194e-5, 3.426885086810216e-5,
    ];
    assert.deepEqual([...inv], expected.map(Math.fround));
  });

  test("theta 1e6: within 1 ulp where torch's vectorized powf rounds differently", () => {
    const inv = ropeInvFreq({ headDim: 128, ropeTheta: 1e6, ropeScaling: null });
    const expected: Record<number, number> = {
      1: 0.8058422207832336,
      36: 0.00042169648804701865,
      37: 0.0003398208355065435, // torch is 1 ulp off the correctly rounded power here
      38: 0.00027384195709601045,
      63: 1.2409377632138785e-6,
    };
    for (const [i, value] of Object.entries(expected)) {
      const ulp = 2 ** (Math.floor(Math.log2(value)) - 23);
      assert.ok(Math.abs(inv[Number(i)] - value) <= ulp, `inv_freq[${i}] = ${inv[Number(i)]}, torch ${value}`);
    }
  });
});
