/**
 * Where the two names of a model's reasoning are made one. Servers send the
 * thinking as `reasoning` (W&B, vLLM since late 2025) or `reasoning_content`
 * (older vLLM); messages and deltas hold it under both, so code reading either
 * name sees it. Both classes call this from their constructor, so the Schema,
 * the direct decoders and a caller's `new` all agree.
 */

interface ReasoningFields {
  readonly reasoning?: string | undefined
  readonly reasoning_content?: string | undefined
}

/**
 * The fields with `reasoning` and `reasoning_content` set to the same text:
 * `reasoning` if given, `reasoning_content` otherwise. Unchanged when neither is.
 *
 * @internal
 */
export const mirror = <P extends ReasoningFields>(props: P): P => {
  const text = props.reasoning ?? props.reasoning_content
  if (text === undefined || (props.reasoning === text && props.reasoning_content === text)) return props
  return { ...props, reasoning: text, reasoning_content: text }
}
