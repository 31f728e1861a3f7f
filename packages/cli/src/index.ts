/**
 * @since 0.2.0
 */

/**
 * Batch runs of JSONL files through W&B Inference: resumable, budgeted, with progress.
 *
 * @since 0.2.0
 */
export * as Batch from "./Batch.js"
