// Reading np.savez output in the browser: a zip archive (normally stored, i.e. not
// compressed) of .npy files. Arrays come back as {shape, data: Float64Array} in C order.

const textLatin1 = new TextDecoder("latin1");
const textUtf8 = new TextDecoder("utf-8");

function findEndOfCentralDirectory(view) {
  const last = view.byteLength - 22;
  const first = Math.max(0, last - 0xffff);
  for (let i = last; i >= first; i--) {
    if (view.getUint32(i, true) === 0x06054b50) return i;
  }
  throw new Error("not a zip archive (no end of central directory)");
}

function u64(view, offset) {
  return Number(view.getBigUint64(offset, true));
}

/** Entries of the central directory: [{name, method, compressedSize, localOffset}]. */
function centralDirectory(view) {
  const eocd = findEndOfCentralDirectory(view);
  let count = view.getUint16(eocd + 10, true);
  let offset = view.getUint32(eocd + 16, true);
  if (count === 0xffff || offset === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || view.getUint32(locator, true) !== 0x07064b50) {
      throw new Error("zip64 archive without a zip64 locator");
    }
    const zip64 = u64(view, locator + 8);
    if (view.getUint32(zip64, true) !== 0x06064b50) throw new Error("bad zip64 end record");
    count = u64(view, zip64 + 32);
    offset = u64(view, zip64 + 48);
  }
  const entries = [];
  for (let i = 0; i < count; i++) {
    if (view.getUint32(offset, true) !== 0x02014b50) throw new Error("bad central directory entry");
    const flags = view.getUint16(offset + 8, true);
    const method = view.getUint16(offset + 10, true);
    let compressedSize = view.getUint32(offset + 20, true);
    let size = view.getUint32(offset + 24, true);
    const nameLength = view.getUint16(offset + 28, true);
    const extraLength = view.getUint16(offset + 30, true);
    const commentLength = view.getUint16(offset + 32, true);
    let localOffset = view.getUint32(offset + 42, true);
    const nameBytes = new Uint8Array(view.buffer, view.byteOffset + offset + 46, nameLength);
    const name = (flags & 0x800 ? textUtf8 : textLatin1).decode(nameBytes);
    // A zip64 extra field holds, in this order, only the sizes that overflowed.
    let extra = offset + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const length = view.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let p = extra + 4;
        if (size === 0xffffffff) { size = u64(view, p); p += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = u64(view, p); p += 8; }
        if (localOffset === 0xffffffff) { localOffset = u64(view, p); }
      }
      extra += 4 + length;
    }
    if (flags & 0x1) throw new Error(`${name} is encrypted`);
    entries.push({ name, method, compressedSize, size, localOffset });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

async function entryBytes(view, entry) {
  const at = entry.localOffset;
  if (view.getUint32(at, true) !== 0x04034b50) throw new Error(`bad local header for ${entry.name}`);
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  const raw = new Uint8Array(view.buffer, view.byteOffset + start, entry.compressedSize);
  if (entry.method === 0) return raw;
  if (entry.method === 8) {
    const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  throw new Error(`${entry.name}: unsupported zip compression method ${entry.method}`);
}

const READERS = {
  f4: (v, o, le) => v.getFloat32(o, le),
  f8: (v, o, le) => v.getFloat64(o, le),
  i1: (v, o) => v.getInt8(o),
  u1: (v, o) => v.getUint8(o),
  b1: (v, o) => v.getUint8(o),
  i2: (v, o, le) => v.getInt16(o, le),
  u2: (v, o, le) => v.getUint16(o, le),
  i4: (v, o, le) => v.getInt32(o, le),
  u4: (v, o, le) => v.getUint32(o, le),
  i8: (v, o, le) => Number(v.getBigInt64(o, le)),
  u8: (v, o, le) => Number(v.getBigUint64(o, le)),
};

/** Parse one .npy file (format versions 1–3) into {shape, dtype, data: Float64Array}. */
export function parseNpy(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new Error("not an .npy file");
  const major = bytes[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = (major >= 3 ? textUtf8 : textLatin1).decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new Error(`unreadable .npy header: ${header}`);
  const shape = shapeText.split(",").map((t) => t.trim()).filter(Boolean).map(Number);
  const kind = descr.slice(1);
  const read = READERS[kind];
  if (!read) throw new Error(`unsupported dtype ${descr}`);
  const littleEndian = descr[0] !== ">";
  const itemSize = Number(kind.slice(1));
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLength;
  if (dataStart + count * itemSize > bytes.length) throw new Error("truncated .npy data");
  let data = new Float64Array(count);
  for (let i = 0; i < count; i++) data[i] = read(view, dataStart + i * itemSize, littleEndian);
  if (fortran && shape.length === 2) {
    const [rows, cols] = shape;
    const c = new Float64Array(count);
    for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) c[r * cols + k] = data[k * rows + r];
    data = c;
  }
  return { shape, dtype: descr, data };
}

/** Parse an npz (ArrayBuffer) into a Map name -> {shape, dtype, data}. */
export async function parseNpz(buffer) {
  const view = new DataView(buffer);
  const arrays = new Map();
  for (const entry of centralDirectory(view)) {
    if (!entry.name.endsWith(".npy")) continue;
    arrays.set(entry.name.slice(0, -4), parseNpy(await entryBytes(view, entry)));
  }
  return arrays;
}

/** W1..WL and b1..bL of a model export, in layer order. */
export function layerArrays(arrays) {
  const weights = [];
  const biases = [];
  for (let l = 1; arrays.has(`W${l}`); l++) {
    weights.push(arrays.get(`W${l}`));
    biases.push(arrays.get(`b${l}`) ?? null);
  }
  return { weights, biases };
}
