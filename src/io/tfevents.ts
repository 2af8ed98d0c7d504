// TensorBoard event files: TFRecord framing (uint64 length, masked CRC-32C of the length, the data, masked CRC-32C
// of the data) around tensorboard.Event messages, encoded by protobufjs from the subset of event.proto,
// summary.proto, histogram.proto, tensor.proto and tensor_shape.proto below (field numbers as in TensorBoard's
// tensorboard/compat/proto/*.proto). TensorBoard reads a directory's files in name order, hence the name scheme.
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FileWriteError, writeAll } from './atomic.js';
import { crc32c, maskCrc } from './crc32c.js';
import { lazyMessageType, type ProtoDescriptor } from './protobuf.js';

const descriptor: ProtoDescriptor = {
  nested: {
    tensorboard: {
      nested: {
        // The oneofs make protobufjs write a member even at its default (a 0 scalar, step 0's file_version).
        Event: {
          oneofs: { what: { oneof: ['fileVersion', 'summary', 'sessionLog'] } },
          fields: {
            wallTime: { type: 'double', id: 1 },
            step: { type: 'int64', id: 2 },
            fileVersion: { type: 'string', id: 3 },
            summary: { type: 'Summary', id: 5 },
            sessionLog: { type: 'SessionLog', id: 7 },
          },
        },
        SessionLog: {
          fields: {
            status: { type: 'int32', id: 1 },
            checkpointPath: { type: 'string', id: 2 },
            msg: { type: 'string', id: 3 },
          },
        },
        Summary: { fields: { value: { rule: 'repeated', type: 'SummaryValue', id: 1 } } },
        SummaryValue: {
          oneofs: { value: { oneof: ['simpleValue', 'image', 'histo', 'tensor'] } },
          fields: {
            tag: { type: 'string', id: 1 },
            simpleValue: { type: 'float', id: 2 },
            image: { type: 'SummaryImage', id: 4 },
            histo: { type: 'HistogramProto', id: 5 },
            tensor: { type: 'TensorProto', id: 8 },
            metadata: { type: 'SummaryMetadata', id: 9 },
          },
        },
        SummaryImage: {
          fields: {
            height: { type: 'int32', id: 1 },
            width: { type: 'int32', id: 2 },
            colorspace: { type: 'int32', id: 3 },
            encodedImageString: { type: 'bytes', id: 4 },
          },
        },
        HistogramProto: {
          fields: {
            min: { type: 'double', id: 1 },
            max: { type: 'double', id: 2 },
            num: { type: 'double', id: 3 },
            sum: { type: 'double', id: 4 },
            sumSquares: { type: 'double', id: 5 },
            bucketLimit: { rule: 'repeated', type: 'double', id: 6, options: { packed: true } },
            bucket: { rule: 'repeated', type: 'double', id: 7, options: { packed: true } },
          },
        },
        SummaryMetadata: {
          fields: {
            pluginData: { type: 'PluginData', id: 1 },
            displayName: { type: 'string', id: 2 },
            summaryDescription: { type: 'string', id: 3 },
          },
        },
        PluginData: { fields: { pluginName: { type: 'string', id: 1 }, content: { type: 'bytes', id: 2 } } },
        TensorProto: {
          fields: {
            dtype: { type: 'int32', id: 1 },
            tensorShape: { type: 'TensorShapeProto', id: 2 },
            stringVal: { rule: 'repeated', type: 'bytes', id: 8 },
          },
        },
        TensorShapeProto: { fields: { dim: { rule: 'repeated', type: 'TensorShapeDim', id: 2 } } },
        TensorShapeDim: { fields: { size: { type: 'int64', id: 1 }, name: { type: 'string', id: 2 } } },
      },
    },
  },
};

/** SessionLog.SessionStatus codes. */
export const SessionStatus = { START: 1, STOP: 2, CHECKPOINT: 3 } as const;
const DT_STRING = 7;

const type = lazyMessageType(descriptor, 'tensorboard.Event');

/** One TFRecord: length, its masked CRC, the data, its masked CRC (all little-endian). */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt(data.length), true);
  v.setUint32(8, maskCrc(crc32c(out.subarray(0, 8))), true);
  out.set(data, 12);
  v.setUint32(12 + data.length, maskCrc(crc32c(data)), true);
  return out;
}

/** Histogram of values: `bins` equal-width buckets from min to max (TensorBoard takes each bucket's right edge). */
export interface Histogram {
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
  /** Right edge of each bucket. */
  bucketLimit: number[];
  /** Count of each bucket. */
  bucket: number[];
}

/** A histogram of plain numbers (equal-width buckets; one bucket when all values are equal). */
export function histogramOf(values: ArrayLike<number>, bins = 30): Histogram {
  let min = Infinity,
    max = -Infinity,
    sum = 0,
    sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
    sumSquares += x * x;
  }
  const n = values.length;
  if (!n) return { min: 0, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit: [], bucket: [] };
  const b = max > min ? bins : 1;
  const width = (max - min) / b;
  const bucket = new Array<number>(b).fill(0);
  for (let i = 0; i < n; i++) bucket[Math.min(b - 1, width > 0 ? Math.floor((values[i]! - min) / width) : 0)]!++;
  const bucketLimit = bucket.map((_, i) => (i === b - 1 ? max : min + (i + 1) * width));
  return { min, max, num: n, sum, sumSquares, bucketLimit, bucket };
}

let fileCounter = 0;

export interface EventWriterOpts {
  /** Seconds since the epoch in the file name and of the first event; default now. */
  wallTime?: number;
}

/**
 * Appends TensorBoard events to a new file `events.out.tfevents.<10-digit secs>.<host>.<pid>.<n>` in `dir`.
 * Events are buffered in memory until {@link flush} (which also fsyncs), so a step costs no system call; call
 * flush at checkpoints and on exit. The first event is `file_version: "brain.Event:2"`.
 */
export class EventWriter {
  readonly path: string;
  private fd: number | null;
  private pending: Uint8Array[] = [];

  constructor(dir: string, o: EventWriterOpts = {}) {
    const wall = o.wallTime ?? Date.now() / 1000;
    const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '_') || 'localhost';
    this.path = join(
      dir,
      `events.out.tfevents.${String(Math.floor(wall)).padStart(10, '0')}.${host}.${process.pid}.${fileCounter++}`,
    );
    try {
      this.fd = openSync(this.path, 'wx');
    } catch (e) {
      throw new FileWriteError(this.path, (e as NodeJS.ErrnoException).code, e);
    }
    this.push({ wallTime: wall, step: 0, fileVersion: 'brain.Event:2' });
  }

  private push(event: Record<string, unknown>): void {
    if (this.fd === null) throw new Error(`${this.path}: the event writer is closed`);
    const t = type();
    this.pending.push(tfRecord(t.encode(t.fromObject({ wallTime: Date.now() / 1000, ...event })).finish()));
  }

  private summary(step: number, value: Record<string, unknown>, wallTime?: number): void {
    this.push({ step, summary: { value: [value] }, ...(wallTime === undefined ? {} : { wallTime }) });
  }

  /** A scalar (stored as float32 `simple_value`). Non-finite values are skipped: TensorBoard cannot plot them. */
  scalar(tag: string, value: number, step: number, wallTime?: number): void {
    if (Number.isFinite(value)) this.summary(step, { tag, simpleValue: value }, wallTime);
  }

  /** A PNG image of `width`×`height` pixels (`channels`: 1 grey, 3 RGB, 4 RGBA; default 3). */
  image(tag: string, png: Uint8Array, width: number, height: number, step: number, channels = 3): void {
    this.summary(step, { tag, image: { height, width, colorspace: channels, encodedImageString: png } });
  }

  /** A histogram (see {@link histogramOf}). */
  histogram(tag: string, h: Histogram, step: number): void {
    this.summary(step, { tag, histo: h });
  }

  /** Text (markdown) for TensorBoard's text plugin: a scalar DT_STRING tensor with plugin "text". */
  text(tag: string, markdown: string, step: number): void {
    this.summary(step, {
      tag,
      metadata: { pluginData: { pluginName: 'text' } },
      tensor: { dtype: DT_STRING, tensorShape: { dim: [] }, stringVal: [Buffer.from(markdown, 'utf8')] },
    });
  }

  /**
   * A SessionLog START at `step`: TensorBoard then drops every event of an earlier file with step ≥ `step`, so a
   * resumed run shows one line instead of the steps the interrupted run logged after its checkpoint.
   */
  sessionStart(step: number): void {
    this.push({ step, sessionLog: { status: SessionStatus.START } });
  }

  /** Writes the buffered events and fsyncs the file. */
  flush(): void {
    if (this.fd === null || !this.pending.length) return;
    const chunks = this.pending;
    this.pending = [];
    try {
      writeAll(this.fd, Buffer.concat(chunks));
      fsyncSync(this.fd);
    } catch (e) {
      throw new FileWriteError(this.path, (e as NodeJS.ErrnoException).code, e);
    }
  }

  /** Flushes and closes; later calls are no-ops. */
  close(): void {
    if (this.fd === null) return;
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
