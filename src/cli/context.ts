import { ConfigError, loadConfig, type Config } from '../config/index';
import { isCodedError } from '../domain/errors';
import { createLogger, type Logger } from '../logging';

/** Loads the config or exits with the named problems (no stack trace for a user's mistake). */
export function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      console.error("\nSee .env.example or the README's configuration table; `patchops doctor` checks everything.");
      process.exit(2);
    }
    throw e;
  }
}

export function loggerFor(config: Config, name = 'patchops'): Logger {
  return createLogger(config.logLevel, name);
}

/** The messages of an error's causes (a database driver's reason under "Failed query: …"), one per line. */
function causes(e: Error): string {
  let out = '';
  for (let c = e.cause, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++)
    if (!e.message.includes(c.message)) out += `\n  caused by: ${c.message}`;
  return out;
}

/** Prints an error for a person: coded errors and plain errors as their message, unknown ones with the stack. */
export function reportFatal(e: unknown): never {
  if (isCodedError(e)) console.error(`error [${e.code}]: ${e.message}`);
  else if (e instanceof Error)
    console.error(`error: ${e.message}${causes(e)}${process.env.PATCHOPS_DEBUG ? `\n${e.stack}` : ''}`);
  else console.error('error:', e);
  process.exit(1);
}

/**
 * Runs until SIGINT/SIGTERM, then calls stop(). A second signal, or stop() taking longer than
 * `graceMs`, exits at once so Ctrl-C always ends the process within ten seconds.
 */
export function runUntilSignal(stop: () => Promise<void>, logger: Logger, graceMs = 9000): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      stopping = true;
      logger.info({ signal }, 'stopping');
      const force = setTimeout(() => {
        logger.error(`did not stop within ${graceMs / 1000}s: exiting`);
        process.exit(1);
      }, graceMs);
      force.unref();
      stop()
        .catch((err: unknown) => logger.error({ err }, 'error while stopping'))
        .finally(() => {
          clearTimeout(force);
          resolve();
        });
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}
