/**
 * @since 0.1.0
 */

/**
 * The faults the simulator can play, with W&B's real statuses and bodies.
 *
 * @since 0.1.0
 */
export * as Fault from "./Fault.js"

/**
 * A W&B Inference simulator on loopback, for integration tests and demos.
 *
 * @since 0.1.0
 */
export * as InferenceSimulator from "./InferenceSimulator.js"

/**
 * A scripted `InferenceClient` layer for an application's own tests: scripted
 * answers and errors, recorded requests, no HTTP.
 *
 * @since 0.1.0
 */
export * as TestInferenceClient from "./TestInferenceClient.js"
