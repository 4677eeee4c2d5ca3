/**
 * The engine state the metrics read at scrape time, declared here (the layer everything may import) so
 * observability never imports the engine. The engine's `EngineStats` is this type.
 */
export interface ServingStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  runningAdapters: string[];
  waitingAdapters: string[];
  maxLoras: number;
  adapterCache: {
    slotsUsed: number;
    slotsTotal: number;
    hostUsed: number;
    hostTotal: number;
    loading: number;
    /** Bytes in the host cache and its --max-cpu-lora-bytes budget (Infinity or absent: none). */
    hostBytes?: number;
    hostBytesCapacity?: number;
  };
}
