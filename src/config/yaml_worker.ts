/**
 * Reads a YAML text off the main thread (see `readDocumentOffThread` in readers.ts): the text
 * comes in, the tree goes back as JSON text, which the main thread takes in several times faster
 * than a structured clone of the same tree. A text js-yaml refuses comes back as `json: null`;
 * the main thread then finds and locates the problem itself.
 */
import { parentPort } from "node:worker_threads";
import { CORE_SCHEMA, load } from "js-yaml";

parentPort?.on("message", (text: string) => {
  let json: string | null = null;
  try {
    json = JSON.stringify(load(text, { schema: CORE_SCHEMA }) ?? null);
  } catch {
    // Located on the main thread, where the positions are.
  }
  parentPort!.postMessage({ json });
});
