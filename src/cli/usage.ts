/** A usage problem found after parsing (conflicting flags, missing input): exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
