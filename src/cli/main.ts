/** `loraplex` command line: one sub-command per job. */
import { Command } from 'commander';
import { applyEnvAliases } from '../config/env.ts';
import { benchCommand } from './bench.ts';
import { generateCommand } from './generate.ts';
import { mergeCommand } from './merge-command.ts';
import { serveCommand } from './serve.ts';

// NIM's and vLLM's variable names stand in for ours before commander reads the environment with the flags.
applyEnvAliases(process.env);

const program = new Command()
  .name('loraplex')
  .description('One base LLM, many LoRA adapters, served at once.')
  .showHelpAfterError();

program.addCommand(generateCommand());
program.addCommand(serveCommand());
program.addCommand(benchCommand());
program.addCommand(mergeCommand());

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = e as Error;
  console.error(`loraplex: ${err.message}`);
  if (process.env.LORAPLEX_DEBUG) console.error(err.stack);
  process.exit(1);
}
