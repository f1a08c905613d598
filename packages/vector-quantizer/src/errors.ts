/** Thrown for an input a quantizer or tokenizer cannot take: the message says what was expected, what came and what to do. */
export class VQInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VQInputError';
  }
}
