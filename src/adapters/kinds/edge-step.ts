/**
 * One step's forward hooks for the slots with edge modules (edge-slots.ts). Rows of a slot are found as runs of
 * equal rowSlot (the step plan sorts rows by slot, so each slot is one run); logit rows likewise through
 * logitRows. Every op works on row views of that run only, so other adapters' and the base's rows are untouched
 * and a row's result does not depend on the rest of the batch.
 *
 * Semantics, for a run of rows of slot s (x, xn, logits as in forward.ts; H hidden, V vocab):
 *   embedding:   x[t] = E_s[tok[t]] (own table) ; x[t] += scale · Aᵀ_s[tok[t]] · Bᵀ_s (LoRA) ;
 *                x[t] = rows_s[j] where tok[t] = ids_s[j] (trainable tokens)
 *   layer norm:  xn[t] = rmsNorm(x[t]) · w_s           final norm: normed[i] = rmsNorm(rows[i]) · w_s
 *   lm_head:     logits[i] = normed[i] · Head_sᵀ (own head) ; logits[i] += scale · (normed[i] · Aᵀ) · Bᵀ (LoRA) ;
 *                logits[i, ids_s[j]] = normed[i] · rows_s[j] (trainable tokens on a tied head)
 */
import type { Backend, StepInputs, StepState, Tensor } from '../../backends/types.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { ForwardHooks, HookedNorm } from '../../model/forward-hooks.ts';
import { normKey, type SlotEdges } from './edge-slot-edges.ts';

interface Run {
  edges: SlotEdges;
  first: number; // first row (of the step's rows, or of the logit rows)
  count: number;
}

/** Per-slot runs of equal slot in `slotOfRow`, kept for slots with edge modules. */
function runs(n: number, slotOfRow: (i: number) => number, edgesOf: (slot: number) => SlotEdges | null): Run[] {
  const out: Run[] = [];
  for (let i = 0; i < n; ) {
    const slot = slotOfRow(i);
    let j = i + 1;
    while (j < n && slotOfRow(j) === slot) j++;
    const edges = slot >= 0 ? edgesOf(slot) : null;
    if (edges) out.push({ edges, first: i, count: j - i });
    i = j;
  }
  return out;
}

export class EdgeStep implements ForwardHooks {
  private readonly rowRuns: Run[];
  private readonly logitRuns: Run[];
  private readonly H: number;
  private readonly V: number;
  private readonly view: NonNullable<Backend['view']>;
  private readonly copy: NonNullable<Backend['copy']>;

  constructor(
    private readonly B: Backend,
    private readonly config: ModelConfig,
    private readonly step: StepState,
    private readonly inputs: StepInputs,
    edgesOf: (slot: number) => SlotEdges | null,
    /** Work tensors, kept across steps by the caller. */
    private readonly scratch: Map<string, Tensor>,
  ) {
    const { rowSlot, logitRows, numTokens } = inputs;
    this.rowRuns = runs(numTokens, (t) => rowSlot[t], edgesOf);
    this.logitRuns = runs(logitRows.length, (r) => rowSlot[logitRows[r]], edgesOf);
    this.H = config.hiddenSize;
    this.V = config.vocabSize;
    if (!B.view || !B.copy) throw new Error(`the ${B.name} backend has no row views`);
    this.view = B.view.bind(B);
    this.copy = B.copy.bind(B);
  }

  get empty(): boolean {
    return this.rowRuns.length === 0 && this.logitRuns.length === 0;
  }

  embedding(x: Tensor): void {
    const { B, H, view } = this;
    const T = this.inputs.numTokens;
    for (const { edges: e, first, count } of this.rowRuns) {
      const xRun = view(x, first * H, count * H);
      if (e.embedding) {
        const all = this.tmp('table', T * H);
        B.embedding(this.step, e.embedding, all);
        this.copy(view(all, first * H, count * H), xRun, count * H);
      }
      if (e.embeddingLora) {
        const { aT, b, rank, scale } = e.embeddingLora;
        const shrunk = this.tmp('shrunk', T * rank);
        B.embedding(this.step, aT, shrunk);
        const delta = this.tmp('delta', count * H);
        B.gemm(view(shrunk, first * rank, count * rank), b, delta, count);
        B.scaleInPlace(delta, count * H, scale);
        B.addInPlace(xRun, delta, count * H);
      }
      if (e.tokens) this.replaceTokenRows(e.tokens, x, first, count);
    }
  }

  layerNorm(layer: number, norm: HookedNorm, x: Tensor, out: Tensor): void {
    const { H, view } = this;
    for (const { edges, first, count } of this.rowRuns) {
      const w = edges.layerNorms.get(normKey(layer, norm));
      if (!w) continue;
      this.B.rmsNorm(
        view(x, first * H, count * H),
        w,
        view(out, first * H, count * H),
        count,
        H,
        this.config.rmsNormEps,
      );
    }
  }

  finalNorm(rows: Tensor, normed: Tensor): void {
    const { H, view } = this;
    for (const { edges, first, count } of this.logitRuns) {
      if (!edges.finalNorm) continue;
      const eps = this.config.rmsNormEps;
      this.B.rmsNorm(
        view(rows, first * H, count * H),
        edges.finalNorm,
        view(normed, first * H, count * H),
        count,
        H,
        eps,
      );
    }
  }

  lmHead(normed: Tensor, logits: Tensor): void {
    const { B, H, V, view } = this;
    for (const { edges: e, first, count } of this.logitRuns) {
      const h = view(normed, first * H, count * H);
      const out = view(logits, first * V, count * V);
      if (e.lmHead) B.gemm(h, e.lmHead, out, count);
      if (e.lmHeadLora) {
        const { a, b, rank, scale } = e.lmHeadLora;
        const shrunk = this.tmp('headShrunk', count * rank);
        B.gemm(h, a, shrunk, count);
        const delta = this.tmp('headDelta', count * V);
        B.gemm(shrunk, b, delta, count);
        B.scaleInPlace(delta, count * V, scale);
        B.addInPlace(out, delta, count * V);
      }
      if (e.tokens?.head) {
        const k = e.tokens.ids.length;
        const cols = this.tmp('tokenLogits', count * k);
        B.gemm(h, e.tokens.head, cols, count);
        for (let i = 0; i < count; i++) {
          for (let j = 0; j < k; j++) this.copy(view(cols, i * k + j, 1), view(out, i * V + e.tokens.ids[j], 1), 1);
        }
      }
    }
  }

  /** Rows whose token is one of the adapter's trainable tokens take its row (PEFT: index_copy into the table). */
  private replaceTokenRows(tokens: NonNullable<SlotEdges['tokens']>, x: Tensor, first: number, count: number): void {
    const { H, view } = this;
    const ids = this.inputs.tokens;
    for (let t = first; t < first + count; t++) {
      const j = tokens.ids.indexOf(ids[t]);
      if (j >= 0) this.copy(view(tokens.rows, j * H, H), view(x, t * H, H), H);
    }
  }

  private tmp(name: string, length: number): Tensor {
    const t = this.scratch.get(name);
    if (t && t.length >= length) return t;
    if (t) this.B.free(t);
    const grown = this.B.allocate(Math.max(length, Math.ceil((t?.length ?? 0) * 1.5)));
    this.scratch.set(name, grown);
    return grown;
  }
}
