/**
 * One instance of every `InferenceError` class, each with every field it can
 * carry set, for tests that must cover the whole family.
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as InferenceError from "../../src/InferenceError.js"
import { MODEL } from "./Client.js"

export const REQUEST_ID = "req-7f3a"

/** The response fields, all set: status 500 is a placeholder each entry overrides. */
export const fullFields = {
  status: 500,
  requestId: REQUEST_ID,
  code: "some_code",
  type: "some_type",
  param: "some_param",
  serverMessage: "what the server said",
  model: MODEL,
  retryAfter: Option.some(Duration.seconds(7)),
  attempts: 3
}

/** Every class once, keyed by its tag, so that a new class without an entry is a type error. */
export const everyError: { readonly [Tag in InferenceError.InferenceError["_tag"]]: InferenceError.InferenceError } = {
  InvalidRequestError: new InferenceError.InvalidRequestError({
    path: "messages[0].role",
    issue: "Expected \"user\", actual \"robot\""
  }),
  BadRequestError: new InferenceError.BadRequestError({ ...fullFields, status: 400 }),
  AuthenticationError: new InferenceError.AuthenticationError({ ...fullFields, status: 401 }),
  QuotaExceededError: new InferenceError.QuotaExceededError({ ...fullFields, status: 402 }),
  PermissionDeniedError: new InferenceError.PermissionDeniedError({
    ...fullFields,
    status: 403,
    reason: "InferenceNotEnabled"
  }),
  NotFoundError: new InferenceError.NotFoundError({
    ...fullFields,
    status: 404,
    resource: "path",
    baseUrl: "http://localhost:8000/v1"
  }),
  ConflictError: new InferenceError.ConflictError({ ...fullFields, status: 409 }),
  UnprocessableEntityError: new InferenceError.UnprocessableEntityError({ ...fullFields, status: 422 }),
  RateLimitError: new InferenceError.RateLimitError({
    ...fullFields,
    status: 429,
    scope: "project",
    limitedModel: MODEL
  }),
  InternalServerError: new InferenceError.InternalServerError({ ...fullFields, status: 502 }),
  ServiceUnavailableError: new InferenceError.ServiceUnavailableError({ ...fullFields, status: 503 }),
  UnexpectedStatusError: new InferenceError.UnexpectedStatusError({ ...fullFields, status: 408 }),
  ConnectionError: new InferenceError.ConnectionError({
    ...fullFields,
    description: "ECONNRESET: socket hang up",
    sent: true
  }),
  TimeoutError: new InferenceError.TimeoutError({
    ...fullFields,
    phase: "attempt",
    timeout: Duration.seconds(60)
  }),
  ResponseDecodeError: new InferenceError.ResponseDecodeError({
    ...fullFields,
    status: 200,
    description: "the body is not JSON (12 bytes)"
  }),
  CircuitOpenError: new InferenceError.CircuitOpenError({
    model: MODEL,
    breaker: `https://api.inference.wandb.ai/v1 ${MODEL}`,
    state: "open",
    retryAfter: Option.some(Duration.seconds(7))
  }),
  BudgetExceededError: new InferenceError.BudgetExceededError({
    model: MODEL,
    dimension: "usd",
    limit: 5,
    spent: 4.5,
    reserved: 0.4,
    requested: 0.2,
    resetsIn: Option.some(Duration.hours(3))
  }),
  CoordinationError: new InferenceError.CoordinationError({
    model: MODEL,
    store: "concurrency",
    reason: "Redis could not answer: connect ECONNREFUSED 127.0.0.1:6379",
    attempts: 1
  })
}

export const everyErrorList: ReadonlyArray<InferenceError.InferenceError> = Object.values(everyError)
