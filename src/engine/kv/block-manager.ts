/**
 * Paged KV cache bookkeeping: the cache is cut into blocks of `blockSize` token rows; each sequence owns a
 * block table (append-only while it runs) and gives its blocks back when it finishes or is preempted.
 */
export class BlockManager {
  private readonly free: number[];

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    // Pop from the end → blocks are handed out in ascending order, which keeps tests readable.
    this.free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  get numFree(): number {
    return this.free.length;
  }

  get numUsed(): number {
    return this.numBlocks - this.free.length;
  }

  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /** Blocks a table of `have` blocks must add to hold `numTokens` tokens. */
  extraBlocksNeeded(have: number, numTokens: number): number {
    return Math.max(0, this.blocksFor(numTokens) - have);
  }

  canGrow(table: readonly number[], numTokens: number): boolean {
    return this.extraBlocksNeeded(table.length, numTokens) <= this.free.length;
  }

  /** Grows `table` to hold `numTokens` tokens; returns false (and changes nothing) when blocks run out. */
  grow(table: number[], numTokens: number): boolean {
    const need = this.extraBlocksNeeded(table.length, numTokens);
    if (need > this.free.length) return false;
    for (let i = 0; i < need; i++) table.push(this.free.pop()!);
    return true;
  }

  release(table: number[]) {
    for (let i = table.length - 1; i >= 0; i--) this.free.push(table[i]);
    table.length = 0;
  }

  /** Cache row of token `position` of a sequence with this block table. */
  slotOf(table: readonly number[], position: number): number {
    return table[Math.floor(position / this.blockSize)] * this.blockSize + (position % this.blockSize);
  }
}
