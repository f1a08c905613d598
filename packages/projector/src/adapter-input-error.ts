/** A visual adapter got a tensor of the wrong rank, width, dtype or index range. */
export class AdapterInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterInputError';
  }
}
