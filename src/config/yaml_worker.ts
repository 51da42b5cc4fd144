/**
 * Reads a YAML text off the main thread (see `readDocumentOffThread` in readers.ts): the text
 * comes in, the tree goes back as JSON text, which the main thread takes in several times faster
 * than a structured clone of the same tree. A text js-yaml refuses comes back as `json: null`;
 * the main thread then finds and locates the problem itself; one holding `.inf` or `.nan`, which
 * JSON cannot carry, as `here: true`, for the main thread to read.
 */
import { parentPort } from "node:worker_threads";
import { CORE_SCHEMA, load } from "js-yaml";

parentPort?.on("message", (text: string) => {
  // `.inf` and `.nan` would not survive JSON: the main thread reads such a text itself. The
  // look for them is here too, off the main thread (10 MB take it tens of ms).
  if (/\.(?:inf|nan)\b/i.test(text)) return parentPort!.postMessage({ json: null, here: true });
  let json: string | null = null;
  try {
    json = JSON.stringify(load(text, { schema: CORE_SCHEMA }) ?? null);
  } catch {
    // Located on the main thread, where the positions are.
  }
  parentPort!.postMessage({ json });
});
