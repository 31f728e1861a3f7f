/**
 * The body of `GET /models`: the models the service offers.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * One model the service offers. Pass its `id` as `model` in a request.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Model extends Schema.Class<Model>("@effect-inference/client/Model")({
  id: Schema.String,
  object: Schema.optionalWith(Schema.String, { nullable: true, default: () => "model" }),
  created: Schema.optionalWith(Schema.Number, { nullable: true, default: () => 0 }),
  owned_by: Schema.optionalWith(Schema.String, { nullable: true, default: () => "" })
}) {}

/**
 * The list envelope `{ object: "list", data: [...] }`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ModelList extends Schema.Class<ModelList>("@effect-inference/client/ModelList")({
  object: Schema.optionalWith(Schema.String, { nullable: true, default: () => "list" }),
  data: Schema.Array(Model)
}) {}
