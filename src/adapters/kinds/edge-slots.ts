/**
 * The edge modules (edge-modules.ts) of the adapters in kernel slots, in the backend's memory: placed when an
 * adapter takes a slot (SlotTable), dropped when it leaves, and turned into a step's forward hooks
 * (edge-step.ts) for the rows of those slots. Serving them needs a backend with row views (Backend.view/copy):
 * the host backends have them; elsewhere placing such an adapter fails with an error naming what is missing.
 *
 *   const edges = new EdgeSlots(backend, config);     // beside the SlotTable, which calls place/clear
 *   const hooks = edges.hooksFor(step, plan.inputs);  // null when no row's slot has edge modules
 *   model.forward(step, kv, bank, hooks);
 */
import type { Backend, StepInputs, StepState, Tensor } from '../../backends/types.ts';
import type { PackedAdapter } from '../../kernels/types.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { ForwardHooks } from '../../model/forward-hooks.ts';
import { specOf } from '../../model/spec/index.ts';
import { createError } from '../../observability/errors.ts';
import { type EdgeModules, edgesOf } from './edge-modules.ts';
import { normKey, type SlotEdges } from './edge-slot-edges.ts';
import { EdgeStep } from './edge-step.ts';

export class EdgeSlots {
  private readonly slots: (SlotEdges | null)[] = [];
  private readonly normOffset: number;
  private readonly scratch = new Map<string, Tensor>();

  constructor(
    private readonly backend: Backend,
    private readonly config: ModelConfig,
  ) {
    this.normOffset = specOf(config.family).normWeightOffset;
  }

  /** After the slot got `packed`'s LoRA factors: its edge modules too (or none). */
  place(slot: number, packed: PackedAdapter): void {
    this.clear(slot);
    const edges = edgesOf(packed);
    if (edges) this.slots[slot] = this.upload(edges);
  }

  clear(slot: number): void {
    const held = this.slots[slot];
    if (!held) return;
    this.slots[slot] = null;
    for (const t of [held.finalNorm, held.tokens?.rows, ...held.layerNorms.values()]) if (t) this.backend.free(t);
  }

  /** This step's hooks, or null when none of its rows uses a slot with edge modules. */
  hooksFor(step: StepState, inputs: StepInputs): ForwardHooks | null {
    if (!this.slots.some((s) => s)) return null;
    const edgeStep = new EdgeStep(
      this.backend,
      this.config,
      step,
      inputs,
      (slot) => this.slots[slot] ?? null,
      this.scratch,
    );
    return edgeStep.empty ? null : edgeStep;
  }

  private upload(e: EdgeModules): SlotEdges {
    const B = this.backend;
    if (!B.view || !B.copy) {
      throw createError('ADAPTER_UNSUPPORTED_FEATURE', {
        file: 'the adapter',
        field: 'embed_tokens / lm_head / modules_to_save / trainable_token_indices',
        problem: `the ${B.name} backend cannot serve adapters that change the embedding, norms or lm_head yet`,
        hint: 'serve it with --backend native, or merge it into the base model',
      });
    }
    const V = this.config.vocabSize;
    const H = this.config.hiddenSize;
    const matrix = (rows: number, cols: number, data: Float32Array) => ({ dtype: 'f32' as const, rows, cols, data });
    const norm = (w: Float32Array) =>
      B.upload(this.normOffset === 0 ? w : w.map((v) => Math.fround(this.normOffset + v)));
    const out: SlotEdges = { layerNorms: new Map() };
    if (e.embeddingLora) {
      const { rank, scale, a, b } = e.embeddingLora;
      out.embeddingLora = {
        aT: B.embeddingTable(matrix(V, rank, a)),
        b: B.packWeight(matrix(H, rank, b)),
        rank,
        scale,
      };
    }
    if (e.lmHeadLora) {
      const { rank, scale, a, b } = e.lmHeadLora;
      out.lmHeadLora = { a: B.packWeight(matrix(rank, H, a)), b: B.packWeight(matrix(V, rank, b)), rank, scale };
    }
    if (e.embedding) out.embedding = B.embeddingTable(matrix(V, H, e.embedding));
    if (e.lmHead) out.lmHead = B.packWeight(matrix(V, H, e.lmHead));
    if (e.finalNorm) out.finalNorm = norm(e.finalNorm);
    for (const l of e.layerNorms ?? []) out.layerNorms.set(normKey(l.layer, l.norm), norm(l.weight));
    if (e.tokens) {
      const { ids, rows, tiedHead } = e.tokens;
      out.tokens = {
        ids,
        rows: B.upload(rows),
        head: tiedHead ? B.packWeight(matrix(ids.length, H, rows)) : null,
      };
    }
    return out;
  }
}
