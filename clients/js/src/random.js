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

  permutation(count) {
    const order = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i -= 1) {
      const j = Math.floor(this.next() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }
}
