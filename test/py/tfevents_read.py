"""An independent reader of TensorBoard event files: TFRecord framing with CRC-32C checked on both the length
and the data, Events parsed by google.protobuf from event.proto compiled by protoc, PNGs decoded by PIL.

usage: tfevents_read.py PROTO_PY_DIR FILE...   prints one JSON object: {"files": [...]} with every event.
A CRC mismatch, a truncated record, a parse error or an undecodable PNG exits non-zero, naming the file.
"""
import io
import json
import struct
import sys

sys.path.insert(0, sys.argv[1])
import event_pb2  # noqa: E402
from PIL import Image  # noqa: E402


def crc32c(data):
    # Bitwise, without a table: deliberately a different implementation from the one under test.
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    with open(path, 'rb') as f:
        buf = f.read()
    off = 0
    while off < len(buf):
        if off + 12 > len(buf):
            raise SystemExit(f'{path}: truncated record header at byte {off}')
        header = buf[off:off + 8]
        (length,) = struct.unpack('<Q', header)
        (len_crc,) = struct.unpack('<I', buf[off + 8:off + 12])
        if masked(crc32c(header)) != len_crc:
            raise SystemExit(f'{path}: length CRC mismatch at byte {off}')
        data = buf[off + 12:off + 12 + length]
        if len(data) != length or off + 16 + length > len(buf):
            raise SystemExit(f'{path}: truncated record data at byte {off}')
        (data_crc,) = struct.unpack('<I', buf[off + 12 + length:off + 16 + length])
        if masked(crc32c(data)) != data_crc:
            raise SystemExit(f'{path}: data CRC mismatch at byte {off}')
        yield data
        off += 16 + length


def describe(ev, path):
    out = {'wall_time': ev.wall_time, 'step': ev.step}
    what = ev.WhichOneof('what')
    if what == 'file_version':
        out['file_version'] = ev.file_version
    elif what == 'session_log':
        out['session_log'] = event_pb2.SessionLog.SessionStatus.Name(ev.session_log.status)
    elif what == 'summary':
        vals = []
        for v in ev.summary.value:
            kind = v.WhichOneof('value')
            d = {'tag': v.tag, 'kind': kind}
            if kind == 'simple_value':
                d['value'] = v.simple_value
            elif kind == 'image':
                img = Image.open(io.BytesIO(v.image.encoded_image_string))
                img.load()
                if img.format != 'PNG' or img.size != (v.image.width, v.image.height):
                    raise SystemExit(f'{path}: image {v.tag} is {img.format} {img.size}, the summary says PNG {v.image.width}x{v.image.height}')
                d.update(width=img.size[0], height=img.size[1], mode=img.mode, colorspace=v.image.colorspace)
            elif kind == 'histo':
                h = v.histo
                d.update(min=h.min, max=h.max, num=h.num, sum=h.sum, sum_squares=h.sum_squares,
                         bucket_limit=list(h.bucket_limit), bucket=list(h.bucket))
            elif kind == 'tensor':
                d.update(plugin=v.metadata.plugin_data.plugin_name, dtype=v.tensor.dtype,
                         text=[s.decode('utf-8') for s in v.tensor.string_val])
            vals.append(d)
        out['values'] = vals
    else:
        raise SystemExit(f'{path}: unexpected event kind {what}')
    return out


files = []
for path in sys.argv[2:]:
    events = []
    for data in records(path):
        ev = event_pb2.Event()
        ev.ParseFromString(data)
        events.append(describe(ev, path))
    files.append({'path': path, 'events': events})
print(json.dumps({'files': files}))
