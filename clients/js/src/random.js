// Reproducible shuffling whose whole state is one 32-bit number, so a paused run fits in JSON.

/** A 32-bit seeded generator (mulberry32): reproducible shuffles whose state fits in JSON. */
export class SeededRandom {
  constructor(seed = 0) { this.state = seed >>> 0; }

  next() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A uniformly shuffled [0, count) (Fisher-Yates, drawing from the last index down). One is
   *  drawn per epoch, so it is written as plain loops: a destructuring swap and Array.from's
   *  callback made it a visible share of a small model's round. */
  permutation(count) {
    const order = new Array(count);
    for (let i = 0; i < count; i += 1) order[i] = i;
    for (let i = count - 1; i > 0; i -= 1) {
      const j = Math.floor(this.next() * (i + 1));
      const swapped = order[i];
      order[i] = order[j];
      order[j] = swapped;
    }
    return order;
  }
}
