/**
 * Which modules of the base model a PEFT LoRA config targets, and with which rank and alpha — the rules of
 * PEFT 0.21 (tuners_utils.check_target_module_exists, _maybe_include_all_linear_layers,
 * _find_minimal_target_modules, utils.other.get_pattern_key), applied to the module names a Hugging Face
 * Llama / Mistral / Qwen2 causal LM has:
 *
 *   model.embed_tokens, model.layers.{i}.self_attn.{q,k,v,o}_proj, model.layers.{i}.mlp.{gate,up,down}_proj,
 *   model.layers.{i}.mlp.act_fn, model.layers.{i}.{input,post_attention}_layernorm, model.norm,
 *   model.rotary_emb, lm_head
 */
import type { ModelFamily } from '../../model/config.ts';
import { isModuleKind, type ModuleKind, moduleParent } from '../../model/modules.ts';
import { MODEL_SPECS, specOf } from '../../model/spec/index.ts';
import type { PeftLoraConfig } from './adapter-config.ts';

import { compilePythonRegex, fullMatcher } from './python-regex.ts';

/** What decides which modules an adapter config targets: LoRA's and VeRA's configs both carry it. */
export type PeftTargeting = Pick<
  PeftLoraConfig,
  'file' | 'targetModules' | 'excludeModules' | 'layersToTransform' | 'layersPattern'
>;

export interface BaseModule {
  name: string; // as in model.named_modules()
  projection: { layer: number; kind: ModuleKind } | null; // null: not a LoRA-able projection
}

/** PEFT condenses target lists at least this long (constants.MIN_TARGET_MODULES_FOR_OPTIMIZATION). */
const MIN_TARGET_MODULES_FOR_OPTIMIZATION = 20;

/** The parent module of a projection: attention for q/k/v/o, the MLP for gate/up/down. */
export function projectionParent(kind: ModuleKind): 'self_attn' | 'mlp' {
  return moduleParent(kind);
}

/**
 * All named modules of the base model. `prefix` is where the decoder stack lives ("model." in a
 * *ForCausalLM; "" in a bare *Model), as the adapter's tensor names show it.
 */
export function baseModules(numLayers: number, prefix: string, family: ModelFamily = 'llama'): BaseModule[] {
  const spec = specOf(family);
  const plain = (name: string): BaseModule => ({ name, projection: null });
  const out: BaseModule[] = [];
  const parts = prefix.split('.').filter((p) => p.length > 0);
  for (let i = 1; i <= parts.length; i++) out.push(plain(parts.slice(0, i).join('.')));
  out.push(plain(`${prefix}embed_tokens`), plain(`${prefix}layers`));
  for (let layer = 0; layer < numLayers; layer++) {
    const l = `${prefix}layers.${layer}`;
    for (const parent of ['self_attn', 'mlp'] as const) {
      out.push(plain(`${l}.${parent}`));
      for (const m of spec.modules) {
        if (m.parent === parent) out.push({ name: `${l}.${parent}.${m.kind}`, projection: { layer, kind: m.kind } });
      }
    }
    for (const other of spec.otherLayerModules) out.push(plain(`${l}.${other}`));
    for (const norm of Object.values(spec.norms)) out.push(plain(`${l}.${norm}`));
  }
  out.push(plain(`${prefix}norm`), plain(`${prefix}rotary_emb`));
  if (prefix !== '') out.push(plain('lm_head')); // the output layer of a *ForCausalLM
  return out;
}

function suffixesShortestFirst(name: string): string[] {
  const parts = name.split('.');
  const out: string[] = [];
  for (let i = parts.length - 1; i >= 0; i--) out.push(parts.slice(i).join('.'));
  return out;
}

function compareLists(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length - b.length;
}

/** PEFT's _find_minimal_target_modules: the fewest dot-suffixes that still pick exactly the targets. */
export function findMinimalTargetModules(targets: Set<string>, others: Set<string>): Set<string> {
  const otherSuffixes = new Set<string>();
  for (const name of others) for (const s of suffixesShortestFirst(name)) otherSuffixes.add(s);
  const items = [...targets].map((t) => [t, suffixesShortestFirst(t)] as const);
  items.sort((x, y) => compareLists(x[1], y[1]));
  const required = new Set<string>();
  for (const [item, suffixes] of items) {
    for (const suffix of suffixes) {
      if (required.has(suffix) || otherSuffixes.has(suffix)) continue;
      if (![...required].some((req) => item.endsWith(`.${req}`))) {
        required.add(suffix);
        break;
      }
    }
  }
  return required.size === 0 ? targets : required;
}

/**
 * The names of the modules the config targets, in model order — what PEFT's inject_adapter would wrap.
 * Non-projection modules may be among them; the caller refuses those.
 */
export function resolveTargetedModules(
  config: PeftTargeting,
  modules: BaseModule[],
  family: ModelFamily,
): BaseModule[] {
  const file = config.file;
  const names = modules.map((m) => m.name);
  let targets: Set<string> | ((key: string) => boolean);
  // PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING when target_modules is null.
  const tm = config.targetModules ?? [...specOf(family).defaultTargets];
  if (typeof tm === 'string' && tm.toLowerCase() === 'all-linear') {
    // Every nn.Linear but the output layer: the projections of every layer.
    targets = new Set(modules.filter((m) => m.projection !== null).map((m) => m.name));
  } else if (typeof tm === 'string') {
    targets = fullMatcher(tm, file, 'target_modules');
  } else {
    targets = new Set(tm);
  }
  if (targets instanceof Set && targets.size >= MIN_TARGET_MODULES_FOR_OPTIMIZATION) {
    // PEFT swaps long lists for their minimal suffixes before matching; that decides whether an exact
    // name skips the layers_to_transform filter, so it is followed here too.
    const list = targets;
    const suffixes = [...list].map((t) => `.${t}`);
    const others = new Set(names.filter((n) => !list.has(n) && !suffixes.some((s) => n.endsWith(s))));
    const minimal = findMinimalTargetModules(targets, others);
    if (minimal.size < targets.size) targets = minimal;
  }
  const excluded = excludeMatcher(config);
  const inLayers = layerFilter(config);
  const matches = (key: string): boolean => {
    if (excluded(key)) return false;
    if (typeof targets === 'function') return targets(key);
    if (targets.has(key)) return true;
    for (const t of targets) if (key.endsWith(`.${t}`)) return inLayers(key);
    return false;
  };
  return modules.filter((m) => m.name !== '' && matches(m.name));
}

function excludeMatcher(config: PeftTargeting): (key: string) => boolean {
  const ex = config.excludeModules;
  if (ex === null || ex.length === 0) return () => false;
  if (typeof ex === 'string') return fullMatcher(ex, config.file, 'exclude_modules');
  const set = new Set(ex);
  return (key) => set.has(key) || ex.some((e) => key.endsWith(`.${e}`));
}

/** layers_to_transform / layers_pattern: which layer index a key sits in, and whether it is wanted. */
function layerFilter(config: PeftTargeting): (key: string) => boolean {
  const wanted = config.layersToTransform;
  if (wanted === null || (Array.isArray(wanted) && wanted.length === 0)) return () => true;
  const patterns = config.layersPattern;
  const regexes =
    patterns === null || patterns.length === 0
      ? [/^.*?\.[^.]*\.(\d+)\./] // the first numbered segment
      : (typeof patterns === 'string' ? [patterns] : patterns).map((p) =>
          compilePythonRegex((s) => `^(?:|.*?\\.)${s}\\.(\\d+)\\.`, p, config.file, 'layers_pattern'),
        );
  return (key) => {
    let index: number | null = null;
    for (const re of regexes) {
      const m = re.exec(key);
      if (m) {
        index = Number(m[m.length - 1]);
        break;
      }
    }
    if (index === null) return false;
    return typeof wanted === 'number' ? index === wanted : wanted.includes(index);
  };
}

/** Compiled rank_pattern / alpha_pattern keys; bounded, since every adapter brings its own. */
const tailMatchers = new Map<string, RegExp>();
const MAX_CACHED_PATTERNS = 1024;

function tailMatcher(pattern: string, file: string, field: string): RegExp {
  let re = tailMatchers.get(pattern);
  if (!re) {
    re = compilePythonRegex((s) => `^(?:.*\\.)?(?:${s})$`, pattern, file, `${field}[${JSON.stringify(pattern)}]`);
    if (tailMatchers.size >= MAX_CACHED_PATTERNS) tailMatchers.clear();
    tailMatchers.set(pattern, re);
  }
  return re;
}

/** PEFT's get_pattern_key: the first pattern that matches a dot-bounded tail of the module name. */
export function patternValue(
  patterns: [string, number][],
  key: string,
  file: string,
  field: string,
): { value: number; pattern: string } | null {
  for (const [pattern, value] of patterns) {
    if (tailMatcher(pattern, file, field).test(key)) return { value, pattern };
  }
  return null;
}

/** Whether any pattern of rank_pattern / alpha_pattern matched none of the targeted modules (PEFT warns). */
export function unusedPatterns(patterns: [string, number][], keys: string[], file: string, field: string): string[] {
  return patterns
    .filter(([pattern]) => !keys.some((k) => patternValue([[pattern, 0]], k, file, field) !== null))
    .map(([pattern]) => pattern);
}

/** Every projection name of the families served (each family has its own subset). */
export const SUPPORTED_TARGETS: readonly string[] = [
  ...new Set(MODEL_SPECS.flatMap((s) => s.modules.map((m) => m.kind))),
].filter(isModuleKind);
