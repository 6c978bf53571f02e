// The crossmodal `embedding` type for node-postgres (pg), in its text and binary forms.
//
// Text form: pgvector's, '[1,2.5,-3]'.  Binary form: int16 dimensions, int16
// reserved (0), then the float4 elements, all in network byte order.  pg sends
// a Buffer parameter in the binary form and anything else in the text form; it
// reads results in the text form (see search.mjs for the binary one).

export function toText(values) {
  return '[' + Array.from(values, (x) => String(x)).join(',') + ']';
}

export function toBinary(values) {
  const buf = Buffer.alloc(4 + 4 * values.length);
  buf.writeInt16BE(values.length, 0);
  buf.writeInt16BE(0, 2);
  values.forEach((x, i) => buf.writeFloatBE(x, 4 + 4 * i));
  return buf;
}

export function parseText(text) {
  const t = text.trim();
  if (!t.startsWith('[') || !t.endsWith(']')) throw new Error(`not an embedding: ${t.slice(0, 40)}`);
  return Float32Array.from(t.slice(1, -1).split(','), Number);
}

export function parseBinary(buf) {
  const dims = buf.readInt16BE(0);
  if (dims < 1 || buf.readInt16BE(2) !== 0 || buf.length !== 4 + 4 * dims) {
    throw new Error('malformed binary embedding');
  }
  const out = new Float32Array(dims);
  for (let i = 0; i < dims; i++) out[i] = buf.readFloatBE(4 + 4 * i);
  return out;
}

// Results of type embedding come back as Float32Array.
export async function registerEmbedding(client, types) {
  const { rows } = await client.query("SELECT 'embedding'::regtype::oid AS oid");
  const oid = Number(rows[0].oid);
  types.setTypeParser(oid, 'text', parseText);
  return oid;
}
