/**
 * Writes .nemo archives in tests, the way NeMo and torch lay them out: a ustar tar (Python's tarfile) of
 * model_config.yaml and model_weights.ckpt, the latter a torch.save zip (stored entries) whose pickle rebuilds
 * each f32 tensor with torch._utils._rebuild_tensor_v2 from a FloatStorage persistent id. Also turns a PEFT
 * adapter into NeMo's canonical variant (one NeMo adapter per projection, the same factors).
 */
import { crc32 } from 'node:zlib';
import type { ModuleKind } from '../../src/model/modules.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';

export interface TensorToSave {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** torch.save({name: tensor}) with pickle protocol 2, as bytes. */
export function torchSave(tensors: TensorToSave[]): Buffer {
  const p = new PickleBytes();
  p.op(0x80, 2).op(0x7d).op(0x28); // PROTO 2, EMPTY_DICT, MARK
  for (const [i, t] of tensors.entries()) {
    p.text(t.name).global('torch._utils', '_rebuild_tensor_v2').op(0x28); // MARK (the arguments)
    p.op(0x28).text('storage').global('torch', 'FloatStorage').text(String(i)).text('cpu').int(t.data.length);
    p.op(0x74, 0x51); // TUPLE, BINPERSID
    p.int(0);
    p.op(0x28);
    for (const n of t.shape) p.int(n);
    p.op(0x74);
    p.op(0x28);
    for (let d = 0, stride = t.data.length; d < t.shape.length; d++) {
      stride /= t.shape[d];
      p.int(stride);
    }
    p.op(0x74, 0x89); // TUPLE, False (requires_grad)
    p.global('collections', 'OrderedDict').op(0x29, 0x52); // OrderedDict() (backward hooks)
    p.op(0x74, 0x52); // TUPLE, REDUCE
  }
  p.op(0x75, 0x2e); // SETITEMS, STOP
  return zip([
    ['archive/data.pkl', p.bytes()],
    ...tensors.map(
      (t, i) =>
        [`archive/data/${i}`, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)] as [
          string,
          Uint8Array,
        ],
    ),
    ['archive/byteorder', Buffer.from('little')],
  ]);
}

class PickleBytes {
  private readonly out: number[] = [];

  op(...codes: number[]): this {
    this.out.push(...codes);
    return this;
  }

  text(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.out.push(0x58, b.length & 255, (b.length >> 8) & 255, (b.length >> 16) & 255, b.length >>> 24, ...b);
    return this;
  }

  global(module: string, name: string): this {
    this.out.push(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1'));
    return this;
  }

  int(n: number): this {
    this.out.push(0x4a, n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255);
    return this;
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

/** A zip of stored entries, as torch's PyTorchStreamWriter writes them. */
export function zip(files: [string, Uint8Array][]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const n = Buffer.from(name);
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(data.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(n.length, 28);
    entry.writeUInt32LE(offset, 42);
    parts.push(local, n, Buffer.from(data));
    central.push(entry, n);
    offset += 30 + n.length + data.length;
  }
  const dir = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, dir, end]);
}

/** A ustar archive of regular files, as Python's tarfile writes it. */
export function tar(files: [string, Uint8Array][]): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, data] of files) {
    const h = Buffer.alloc(512);
    h.write(name, 0, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\x0000', 257, 'latin1');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    blocks.push(h, Buffer.from(data), Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const CANONICAL_NAMES: Record<ModuleKind, string | null> = {
  q_proj: 'self_attention.adapter_layer.lora_unfused_kqv_adapter.q_adapter',
  k_proj: 'self_attention.adapter_layer.lora_unfused_kqv_adapter.k_adapter',
  v_proj: 'self_attention.adapter_layer.lora_unfused_kqv_adapter.v_adapter',
  o_proj: 'self_attention.adapter_layer.lora_dense_attention_adapter',
  gate_proj: 'mlp.adapter_layer.lora_unfused_hto4h_adapter.gate_adapter',
  up_proj: 'mlp.adapter_layer.lora_unfused_hto4h_adapter.up_adapter',
  down_proj: 'mlp.adapter_layer.lora_4htoh_adapter',
  qkv_proj: null,
  gate_up_proj: null,
};

/**
 * A PEFT adapter on all seven Llama projections (one rank, alpha/r scale) as a canonical NeMo .nemo: the same
 * factors under NeMo's names (lora_A → linear_in, lora_B → linear_out) and its rank and alpha in the YAML.
 */
export async function peftToCanonicalNemo(peftWeights: string, rank: number, alpha: number): Promise<Buffer> {
  const file = await SafetensorsFile.open(peftWeights);
  const tensors: TensorToSave[] = [];
  for (const name of [...file.tensors.keys()].sort()) {
    const m = /layers\.(\d+)\.(?:self_attn|mlp)\.([a-z_]+)\.lora_([AB])\.weight$/.exec(name);
    const nemo = m ? CANONICAL_NAMES[m[2] as ModuleKind] : null;
    if (!m || !nemo) throw new Error(`not a Llama PEFT LoRA tensor: ${name}`);
    const { data } = await file.readF32(name);
    const factor = m[3] === 'A' ? 'linear_in' : 'linear_out';
    tensors.push({
      name: `model.decoder.layers.${m[1]}.${nemo}.${factor}.weight`,
      shape: [...file.tensors.get(name)!.shape],
      data,
    });
  }
  const yaml = [
    'mcore_gpt: true',
    'tensor_model_parallel_size: 1',
    'peft:',
    '  peft_scheme: lora',
    '  lora_tuning:',
    `    adapter_dim: ${rank}`,
    `    alpha: ${alpha}`,
    '    target_modules: [all]',
    '    variant: canonical',
    '',
  ].join('\n');
  return tar([
    ['./model_config.yaml', Buffer.from(yaml)],
    ['./model_weights.ckpt', torchSave(tensors)],
  ]);
}
