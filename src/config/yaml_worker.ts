/**
 * The YAML worker thread (see `readDocumentOffThread` in readers.ts): it reads a large text with
 * js-yaml and hands the tree back as JSON text, which the main thread takes in several times
 * faster than a structured clone of the same tree; a text that does not read comes back with
 * where and why. Asked for places, it reads the text with `yaml` (which keeps positions) and
 * answers each. A text holding `.inf` or `.nan` (JSON cannot carry them), or one only `yaml`
 * reads, is left to the main thread.
 */
import { parentPort } from "node:worker_threads";
import { CORE_SCHEMA, load } from "js-yaml";
import { readDocument, ReadError, type WorkerAnswer, type WorkerQuestion } from "./readers.ts";

function answer(question: WorkerQuestion): WorkerAnswer {
  const { text, locate } = question;
  if (locate) {
    const doc = readDocument(text, "(worker)");
    return { places: locate.map(([path, key]) => doc.locate(path, key)) };
  }
  // The look for these is here too, off the main thread (10 MB take it tens of ms).
  if (/\.(?:inf|nan)\b/i.test(text)) return { here: true };
  try {
    return { json: JSON.stringify(load(text, { schema: CORE_SCHEMA }) ?? null) };
  } catch {
    // js-yaml refuses it: `yaml` says where, or reads it (an empty text, say).
  }
  try {
    readDocument(text, "(worker)");
    return { here: true };
  } catch (error) {
    if (!(error instanceof ReadError)) throw error;
    return { unreadable: { position: error.position, detail: error.detail } };
  }
}

parentPort?.on("message", (question: WorkerQuestion) => parentPort!.postMessage(answer(question)));
