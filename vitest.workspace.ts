/**
 * The test projects of the monorepo, one per package. The root `vitest.config.ts`
 * passes this list to `test.projects` (Vitest 3.2 deprecates a bare workspace file).
 */
export default ["packages/*/vitest.config.ts"]
