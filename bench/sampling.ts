/**
 * The native sampler on one row of a Llama-3-sized vocabulary (128 256) with flat logits (standard deviation
 * 0.9, as the random-weight bench models give): temperature 1, no top-k / top-p, so the inverse-CDF walk order
 * covers most of the vocabulary. Median and minimum of 40 calls.
 *
 *   npx tsx bench/sampling.ts
 */
import './native-env.ts';
import { nativeSamplingKernels as k } from '../src/kernels/native/sampling.ts';

const vocab = 128256;
let seed = 12345;
const uniform = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const logits = new Float32Array(vocab);
for (let v = 0; v < vocab; v++) {
  const u = uniform() || 1e-9;
  logits[v] = 0.9 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
}
const out = new Int32Array(1);
const times: number[] = [];
for (let i = 0; i < 40; i++) {
  const t0 = performance.now();
  k.sample(logits, vocab, [{ temperature: 1, topK: 0, topP: 1, uniform: uniform() }], out);
  times.push(performance.now() - t0);
}
times.sort((x, y) => x - y);
console.log(
  `sample, vocab ${vocab}, flat logits (std 0.9), T=1: median ${times[20].toFixed(2)} ms, min ${times[0].toFixed(2)} ms`,
);
