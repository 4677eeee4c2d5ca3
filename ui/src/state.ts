/** The shape of GET /ui/api/state (src/server/ui/state.ts on the server). */
export interface ModelRow {
  id: string;
  kind: 'base' | 'adapter';
  source: string | null;
  tier: string | null;
  version: number | null;
  rank: number | null;
  targets: string[] | null;
  error: string | null;
  pinned: boolean;
  running: number;
  waiting: number;
  requests: number;
  tokens: number;
  tokensPerSecond: number;
  ttftMs: number | null;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  maxLoras: number;
  adapterCache: { slotsUsed: number; slotsTotal: number; hostUsed: number; hostTotal: number; loading: number };
}

export interface DashboardState {
  model: string;
  maxModelLen: number;
  engine: EngineStats | null;
  models: ModelRow[];
  history: { t: number; kvUse: number; running: number; waiting: number }[];
  admin: { enabled: boolean; ownKey: boolean };
}
