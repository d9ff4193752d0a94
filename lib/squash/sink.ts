/**
 * Where the merged tar stream goes: a byte sink with a small write buffer, so thousands of 512-byte
 * headers become a few large writes to `mksquashfs`'s stdin (or a file in tests).
 */

/** Anything bytes can be written to, in order. */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Coalesces small writes into `capacity`-byte blocks; big writes pass through unbuffered. */
export class BufferedSink implements ByteSink {
  #out: WritableStreamDefaultWriter<Uint8Array>;
  #buf: Uint8Array;
  #len = 0;
  /** Bytes written in total. */
  written = 0;

  constructor(out: WritableStreamDefaultWriter<Uint8Array>, capacity = 256 * 1024) {
    this.#out = out;
    this.#buf = new Uint8Array(capacity);
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.written += bytes.length;
    if (this.#len + bytes.length <= this.#buf.length) {
      this.#buf.set(bytes, this.#len);
      this.#len += bytes.length;
      return;
    }
    await this.flush();
    if (bytes.length >= this.#buf.length / 2) {
      // Awaited, so the caller may reuse `bytes` afterwards.
      await this.#out.write(bytes);
    } else {
      this.#buf.set(bytes, 0);
      this.#len = bytes.length;
    }
  }

  async flush(): Promise<void> {
    if (this.#len === 0) return;
    const chunk = this.#buf.slice(0, this.#len);
    this.#len = 0;
    await this.#out.write(chunk);
  }

  async close(): Promise<void> {
    await this.flush();
    await this.#out.close();
  }
}
