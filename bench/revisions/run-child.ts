/** Runs a benchmark script of one checkout with that checkout's tsx; resolves with its stdout. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export function runScript(dir: string, script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(dir, 'node_modules', '.bin', 'tsx'), [script, ...args], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${script} ${args.join(' ')} in ${dir} exited ${code}:\n${err.slice(-4000)}`));
    });
  });
}
