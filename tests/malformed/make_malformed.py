#!/usr/bin/env python3
"""Writes the binary files of tests/malformed/ (run from the source dir after building; needs only
the standard library):

    python3 tests/malformed/make_malformed.py build/minienc

First tiny_checkpoint.safetensors, the checkpoint of a 3-step `minienc train tests/malformed/tiny.ini`
(the good file the damaged checkpoints below start from), then everything derived from it and the
other damaged binaries. Without the binary argument the existing tiny_checkpoint.safetensors is used.
Every other file here is text, written by hand."""
import json, shutil, struct, subprocess, sys, tempfile

D = 'tests/malformed/'

if len(sys.argv) > 1:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.argv[1], 'train', D + 'tiny.ini', '--set', 'log.out_dir=' + tmp + '/run',
                        '--set', 'train.threads=1'], check=True, stdout=subprocess.DEVNULL)
        shutil.copyfile(tmp + '/run/checkpoint.safetensors', D + 'tiny_checkpoint.safetensors')

def pack(header, data=b''):
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    return struct.pack('<Q', len(h)) + h + data

def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]

def write(name, data):
    open(D + name, 'wb').write(data)

ck, ck_data = read(D + 'tiny_checkpoint.safetensors')
raw = open(D + 'tiny_checkpoint.safetensors', 'rb').read()
write('truncated_checkpoint.safetensors', raw[:len(raw) // 2])
write('header_only.safetensors', raw[:8 + struct.unpack('<Q', raw[:8])[0]])
write('garbage.safetensors', bytes((i * 7919 + 13) % 256 for i in range(512)))
write('empty.safetensors', b'')
write('short.safetensors', b'\x10\x00\x00')
write('huge_header_length.safetensors', struct.pack('<Q', 2**63 + 5) + b'{}')
write('header_past_end.safetensors', struct.pack('<Q', 4096) + b'{"a":1}')
write('not_json.safetensors', struct.pack('<Q', 8) + b'{"a":[1,' + b'\0' * 8)
write('offsets_overflow.safetensors', pack({'x': {'dtype': 'F32', 'shape': [2**62, 16],
                                                   'data_offsets': [0, 8]}}, b'\0' * 8))
write('offsets_past_end.safetensors', pack({'x': {'dtype': 'F32', 'shape': [4],
                                                   'data_offsets': [0, 16]}}, b'\0' * 8))
write('bad_dtype.safetensors', pack({'x': {'dtype': 'F16', 'shape': [4], 'data_offsets': [0, 8]}}, b'\0' * 8))
write('negative_shape.safetensors', pack({'x': {'dtype': 'F32', 'shape': [-1, 2],
                                                 'data_offsets': [0, 8]}}, b'\0' * 8))

# A checkpoint whose tensors disagree with the stored config (the stored config claims d_ff = 12).
h = dict(ck)
meta = dict(h['__metadata__'])
meta['config'] = meta['config'].replace('d_ff = 6', 'd_ff = 12')
assert meta['config'] != ck['__metadata__']['config']
h['__metadata__'] = meta
write('config_disagrees_checkpoint.safetensors', pack(h, ck_data))

# A checkpoint whose stored config is garbage.
meta = dict(ck['__metadata__'])
meta['config'] = '[model]\nd_model = lots\n'
h = dict(ck)
h['__metadata__'] = meta
write('bad_stored_config_checkpoint.safetensors', pack(h, ck_data))

# A checkpoint with one parameter tensor of the wrong shape (and the data region to match).
h = dict(ck)
name = 'encoder.layers.0.norm1.weight'
t = dict(h[name])
assert t['shape'] == [4]
t['shape'] = [2, 2]
h[name] = t
write('wrong_shape_checkpoint.safetensors', pack(h, ck_data))

# A checkpoint with a tensor stored as I32 instead of F32.
h = dict(ck)
t = dict(h[name])
t['dtype'] = 'I32'
h[name] = t
write('wrong_dtype_checkpoint.safetensors', pack(h, ck_data))

# Training state that does not parse.
for key, value, fname in [('step', '-3', 'negative_step_checkpoint.safetensors'),
                          ('rng', 'zz', 'bad_rng_checkpoint.safetensors'),
                          ('sampler', '1,2,99999999', 'bad_sampler_checkpoint.safetensors')]:
    h = dict(ck)
    meta = dict(h['__metadata__'])
    meta[key] = value
    h['__metadata__'] = meta
    write(fname, pack(h, ck_data))
