/**
 * GET /ui/api/state: everything the dashboard's live view shows, in one JSON document the page polls. The
 * models come from the engine's adapter list (tiers, ranks) joined with the ledger's traffic per model.
 */
import type { AdapterInfo } from '../../adapters/cache/adapter-manager.ts';
import type { ServingStats } from '../../observability/serving-stats.ts';
import type { LoadSample } from './history.ts';
import type { ModelTraffic } from './traffic.ts';

export type DashboardTier = Exclude<AdapterInfo['tier'], 'disk'> | 'store';

export interface ModelRow extends ModelTraffic {
  id: string;
  kind: 'base' | 'adapter';
  /** Where the adapter comes from: static (--adapter), store (--lora-dir), api (loaded at run time), memory. */
  source: AdapterInfo['origin'] | null;
  /** store (on disk), host (packed in memory), slot (in a kernel slot), loading or failed; null for the base. */
  tier: DashboardTier | null;
  version: number | null;
  rank: number | null;
  targets: string[] | null;
  error: string | null;
  /** Kept in the host tier (POST /v1/pin_lora_adapter); false for the base. */
  pinned: boolean;
}

export interface DashboardState {
  model: string;
  maxModelLen: number;
  engine: ServingStats | null;
  models: ModelRow[];
  history: readonly LoadSample[];
  /** Whether the admin routes are on, and whether they take their own key (else the API key). */
  admin: { enabled: boolean; ownKey: boolean };
}

const IDLE: ModelTraffic = { running: 0, waiting: 0, requests: 0, tokens: 0, tokensPerSecond: 0, ttftMs: null };

export interface StateInputs {
  baseModel: string;
  maxModelLen: number;
  stats: ServingStats | null;
  adapters: readonly AdapterInfo[];
  traffic: Map<string | null, ModelTraffic>;
  history: readonly LoadSample[];
  admin: { enabled: boolean; ownKey: boolean };
}

export function dashboardState(s: StateInputs): DashboardState {
  const base: ModelRow = {
    id: s.baseModel,
    kind: 'base',
    source: null,
    tier: null,
    version: null,
    rank: null,
    targets: null,
    error: null,
    pinned: false,
    ...(s.traffic.get(null) ?? IDLE),
  };
  const adapters = s.adapters.map(
    (a): ModelRow => ({
      id: a.name,
      kind: 'adapter',
      source: a.origin,
      // The adapter manager calls "on disk" 'disk'; the dashboard names the tier as operators do: the store.
      tier: a.tier === 'disk' ? 'store' : a.tier,
      version: a.version,
      rank: a.rank,
      targets: a.targets,
      error: a.error,
      pinned: a.pinned,
      ...(s.traffic.get(a.name) ?? IDLE),
    }),
  );
  return {
    model: s.baseModel,
    maxModelLen: s.maxModelLen,
    engine: s.stats,
    models: [base, ...adapters],
    history: s.history,
    admin: s.admin,
  };
}
