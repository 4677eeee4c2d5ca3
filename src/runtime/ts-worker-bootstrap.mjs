// Worker threads start without the main thread's module hooks: register tsx here, then load the TypeScript
// entry module named in workerData.entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
