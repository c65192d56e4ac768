"""Checks for the exercises of 00a_data: the sizes of the Fashion-MNIST files, an IDX header parsed by hand, a SHA-256
computed chunk by chunk, and an IDX reader for every element type (big-endian payloads)."""
import hashlib, math, random, struct

import torch

from exercises import NotAttempted, Wrong, check_predictions, code_of, exercise

# 00a.1: the sizes, from the IDX format (a 4-byte magic number, one 4-byte integer per dimension, one byte per pixel)
TRAIN_IMAGES, TRAIN_LABELS = (60_000, 28, 28), (60_000,)
MiB = 1 << 20   # _digest's block size


def idx_size(dims, item=1): return 4 + 4 * len(dims) + math.prod(dims) * item


SIZE_QUESTIONS = ('bytes in train-images-idx3-ubyte, decompressed',
                  'bytes in train-labels-idx1-ubyte, decompressed',
                  'bytes of x_train, as load_mnist returns it',
                  'h.update calls when get_file verifies the training images')


def size_truths():
    images = idx_size(TRAIN_IMAGES)
    return dict(zip(SIZE_QUESTIONS, (images, idx_size(TRAIN_LABELS),
                                     math.prod(TRAIN_IMAGES) * torch.finfo(torch.float32).bits // 8,
                                     math.ceil(images / MiB))))


def size_hint(question, value):
    "The hint for a wrong prediction, aimed at the mistake that value reveals where one can tell."
    truth = size_truths()
    pixels = math.prod(TRAIN_IMAGES)
    if question == SIZE_QUESTIONS[0]:
        if value == pixels: return "the pixels are right: now add the header, a 4-byte magic number and one 4-byte integer per dimension"
        if isinstance(value, (int, float)) and value < pixels:
            return "the decompressed file: one byte per pixel, 784 pixels per image, 60,000 images, plus the header (the .gz is smaller)"
        return "type code 0x08 is one byte per pixel; the header is 4 bytes of magic plus 4 per dimension"
    if question == SIZE_QUESTIONS[1]:
        if value == TRAIN_LABELS[0]: return "one byte per label is right: now add the header (magic, then one 4-byte dimension)"
        if value == TRAIN_LABELS[0] + 16: return "a labels file has one dimension (magic 0x00000801), so its header is shorter than the images' one"
        return "one byte per label, plus a header of 4 bytes of magic and 4 per dimension"
    if question == SIZE_QUESTIONS[2]:
        if value in (pixels, truth[SIZE_QUESTIONS[0]]): return "load_mnist converts the bytes to float32: how many bytes is one float32?"
        return "x_train is a float32 tensor of shape (60000, 784), with no header"
    if value == truth[question] - 1: return "the last block is shorter than 1 MiB, and it is hashed too: round up"
    if value == truth[question] + 1: return "the read that returns b'' ends the loop: nothing is hashed for it"
    return "'sha256-gunzip' hashes the decompressed bytes, read 1 MiB (1 << 20 bytes) at a time"


@exercise('00a.1', 'predict the sizes of the Fashion-MNIST files', kind='predict')
def check_sizes(answer):
    truth = size_truths()
    expected = {q: (lambda v, q=q: isinstance(v, (int, float)) and v == truth[q]) for q in SIZE_QUESTIONS}
    hints = {q: size_hint(q, answer.get(q)) for q in SIZE_QUESTIONS} if isinstance(answer, dict) else {}
    return check_predictions(answer, expected, hints, "the exact number") + (
        ": as float32 the training images take four times the room of the decompressed file")


# ---- IDX files built fresh by the checks ----

IDX_TYPES = {0x08: ('B', torch.uint8), 0x09: ('b', torch.int8), 0x0B: ('h', torch.int16),
             0x0C: ('i', torch.int32), 0x0D: ('f', torch.float32), 0x0E: ('d', torch.float64)}


def random_dims(rng, ndim, big=False):
    "Dimensions for a header; with `big`, some above 255 and 65,535, so that reading the bytes in the wrong order shows."
    return tuple(rng.choice([1, rng.randint(2, 40), rng.randint(256, 70_000), rng.randint(65_536, 3_000_000)]) if big
                 else rng.randint(1, 5) for _ in range(ndim))


def header(code, dims): return bytes([0, 0, code, len(dims)]) + struct.pack(f'>{len(dims)}I', *dims)


def shown_bytes(raw, n=24): return raw[:n].hex(' ') + (' ...' if len(raw) > n else '')


def returned(got, what):
    "The learner's return value; the stub's `...` means not attempted, and None a function that forgot to return."
    if got is Ellipsis: raise NotAttempted()
    if got is None: raise Wrong(f"your function returned None; expected {what}", "did the function end without `return`?")
    return got


def as_dims(value):
    if isinstance(value, torch.Size): return tuple(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value): return tuple(value)
    return None


@exercise('00a.2', 'idx_header: the type code and dimensions of an IDX file')
def check_idx_header(idx_header):
    rng = random.Random(2)
    cases = [(0x08, (2, 28, 28)), (0x08, (60_000,))] + [(rng.choice(list(IDX_TYPES)), random_dims(rng, rng.randint(1, 4), big=True))
                                                        for _ in range(10)]
    for code, dims in cases:
        raw = header(code, dims) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))   # the payload does not matter here
        got = returned(idx_header(raw), "the pair (type_code, dims)")
        shown = f"a header of type 0x{code:02X} with {len(dims)} dimension{'s' * (len(dims) > 1)} (bytes {shown_bytes(raw)})"
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Wrong(f"{shown}: came back {got!r}; expected a pair (type_code, dims)")
        got_code, got_dims = got
        if got_code != code:
            raise Wrong(f"{shown}: type code {got_code!r}, not the one in the header",
                        "the type code is the third byte (index 2); the fourth (index 3) is the number of dimensions")
        if as_dims(got_dims) is None:
            raise Wrong(f"{shown}: dims came back as {got_dims!r}; expected a tuple of ints")
        got_dims = as_dims(got_dims)
        if len(got_dims) != len(dims):
            raise Wrong(f"{shown}: {len(got_dims)} dimensions came back, expected {len(dims)}",
                        "the fourth byte says how many 4-byte dimensions follow: read that many, whatever the file")
        if got_dims == struct.unpack(f'<{len(dims)}I', raw[4:4 + 4 * len(dims)]):
            raise Wrong(f"{shown}: dims {got_dims}, the bytes read in the wrong order",
                        "IDX integers are big-endian, most significant byte first: struct's '>' (or int.from_bytes(..., 'big'))")
        if got_dims != dims:
            raise Wrong(f"{shown}: dims {got_dims}, not what the header holds",
                        "each dimension is 4 bytes, starting right after the 4-byte magic number (at offset 4)")
    refused = {'the first two bytes are not zero (a zip file)': b'PK\x03\x04' + bytes(12),
               'the first two bytes are not zero': bytes([1, 0, 8, 1]) + struct.pack('>I', 3) + bytes(3),
               'the header is cut short (3 dimensions announced, 2 present)': bytes([0, 0, 8, 3]) + struct.pack('>2I', 2, 28),
               'the file is shorter than the magic number': bytes([0, 0])}
    for what, raw in refused.items():
        try: got = idx_header(raw)
        except ValueError: continue
        except Exception as e:
            raise Wrong(f"bytes {shown_bytes(raw)} ({what}): raised {type(e).__name__}, not ValueError",
                        "check the lengths and the magic yourself, and raise ValueError with a message that says what is wrong") from None
        raise Wrong(f"bytes {shown_bytes(raw)} ({what}): came back {got!r} instead of raising ValueError",
                    "refuse bad data before using it: the first two bytes must be zero, and the header as long as it announces")
    return f"right on {len(cases)} fresh headers (1 to 4 dimensions, every type code), and bad ones refused"


# 00a.3: a SHA-256 read chunk by chunk, from a stream that records how it was read

class RecordingStream:
    "A binary stream that offers read(n) only and records each n asked for."
    def __init__(self, data): self.data, self.pos, self.asked = data, 0, []
    def read(self, n=-1):
        self.asked.append(n)
        end = len(self.data) if n is None or n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


@exercise('00a.3', 'sha256_stream: a digest read chunk by chunk')
def check_sha256_stream(sha256_stream):
    code = code_of(sha256_stream)
    if 'file_digest' in code: raise Wrong("your function calls hashlib.file_digest", "write the loop yourself: read a chunk, update, repeat")
    rng = random.Random(3)
    cases = [(n, chunk) for chunk in (64, 1000) for n in (0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + rng.randint(1, chunk - 1))]
    cases.append((2 * MiB + rng.randint(1, MiB), None))   # the default chunk size, on a few MiB
    for n, chunk in cases:
        data = rng.randbytes(n)
        stream = RecordingStream(data)
        got = returned(sha256_stream(stream) if chunk is None else sha256_stream(stream, chunk), "a hex digest")
        size = chunk or MiB
        shown = f"{n:,} random bytes, chunk_size {size:,}"
        if any(a is None or a < 0 or a > size for a in stream.asked):
            whole = any(a is None or a < 0 for a in stream.asked)
            raise Wrong(f"{shown}: your function " + ("read the whole stream at once (read() with no size)" if whole else
                                                      f"asked the stream for {max(stream.asked):,} bytes in one read"),
                        "read at most chunk_size bytes at a time, f.read(chunk_size): a file need not fit in memory")
        want = hashlib.sha256(data).hexdigest()
        if isinstance(got, bytes):
            raise Wrong(f"{shown}: came back {len(got)} raw bytes", "the digests in SOURCES are hex strings: hexdigest(), not digest()")
        if got == want: continue
        chunks = [data[i:i + size] for i in range(0, n, size)]
        if isinstance(got, str) and len(got) == 32:
            raise Wrong(f"{shown}: a 32-character digest", "SHA-256 gives 64 hex characters; 32 is MD5's length")
        if chunks and got in (hashlib.sha256(chunks[-1]).hexdigest(), hashlib.sha256(chunks[0]).hexdigest()):
            raise Wrong(f"{shown}: the digest of one chunk, not of the whole stream",
                        "one hash object for the whole stream: create it before the loop, update it with every chunk, read the digest after")
        if got == hashlib.sha256(data[:n - n % size]).hexdigest():
            raise Wrong(f"{shown}: the digest of the full chunks only", "the last chunk is usually shorter: stop only when read returns b''")
        raise Wrong(f"{shown}: came back {got!r}, not hashlib.sha256(all the bytes).hexdigest()",
                    "update one hashlib.sha256() object with each chunk, in order, then take hexdigest()")
    return (f"equal to hashlib.sha256 on {len(cases)} fresh byte strings (empty, one byte, chunk boundaries, a few MiB), "
            "never reading more than chunk_size bytes at a time")


# 00a.4: an IDX reader for every element type

def encode_idx(code, dims, values):
    fmt = IDX_TYPES[code][0]
    return header(code, dims) + struct.pack(f'>{len(values)}{fmt}', *values)


def random_values(rng, code, n):
    fmt, dtype = IDX_TYPES[code]
    if dtype.is_floating_point: return [rng.choice([0.0, 1.0, -2.5]) if rng.random() < 0.1 else rng.gauss(0, 1000) for _ in range(n)]
    info = torch.iinfo(dtype)
    return [rng.randint(info.min, info.max) for _ in range(n)]


@exercise('00a.4', 'read_idx_bytes: every IDX element type, big-endian')
def check_read_idx_bytes(read_idx_bytes):
    rng = random.Random(4)
    cases = [(code, random_dims(rng, rng.randint(1, 3))) for code in IDX_TYPES for _ in range(2)]
    rng.shuffle(cases)
    for code, dims in cases:
        values = random_values(rng, code, math.prod(dims))
        raw = encode_idx(code, dims, values)
        fmt, dtype = IDX_TYPES[code]
        try: got = read_idx_bytes(raw)
        except ValueError as e:
            raise Wrong(f"a valid file of type 0x{code:02X} ({dtype}), dims {dims}, {len(raw)} bytes: refused with ValueError: {e}",
                        "the payload holds prod(dims) items of the type's size (1, 2, 4 or 8 bytes), not prod(dims) bytes") from None
        got = returned(got, "a tensor")
        want = torch.tensor(values, dtype=dtype).reshape(dims)
        shown = f"type 0x{code:02X}, dims {dims}"
        if not torch.is_tensor(got): raise Wrong(f"{shown}: came back {type(got).__name__}; expected a tensor")
        if got.dtype != dtype:
            raise Wrong(f"{shown}: dtype {got.dtype}, not the one the type code names",
                        "0x08 unsigned byte, 0x09 signed byte, 0x0B 2-byte int, 0x0C 4-byte int, 0x0D float32, 0x0E float64")
        if tuple(got.shape) != dims: raise Wrong(f"{shown}: shape {tuple(got.shape)}; expected {dims}", "reshape to the dimensions in the header")
        if torch.equal(got, want): continue
        size = struct.calcsize(fmt)
        swapped = torch.tensor(struct.unpack(f'<{len(values)}{fmt}', raw[4 + 4 * len(dims):]), dtype=dtype).reshape(dims)
        if size > 1 and torch.equal(got, swapped):
            raise Wrong(f"{shown}: the values with their bytes in the wrong order",
                        "the payload is big-endian like the header, and torch.frombuffer reads this machine's order (little-endian): "
                        "reverse the bytes of each item, or let struct's '>' do it")
        raise Wrong(f"{shown}: the right dtype and shape, the wrong values",
                    "the payload starts right after the header (4 + 4 * ndim bytes), one item of the type's size after another")
    code, dims = 0x0C, (3, 4)
    raw = encode_idx(code, dims, list(range(12)))
    for what, bad in {'one byte short': raw[:-1], 'one item too many': raw + bytes(4)}.items():
        try: got = read_idx_bytes(bad)
        except ValueError: continue
        except Exception as e:
            raise Wrong(f"a type 0x0C file of dims {dims} with its payload {what}: raised {type(e).__name__}, not ValueError",
                        "compare the payload's length with prod(dims) times the item size first, and raise ValueError") from None
        raise Wrong(f"a type 0x0C file of dims {dims} with its payload {what}: came back a {type(got).__name__} instead of raising ValueError",
                    "a payload of the wrong size means a damaged file: refuse it, as read_idx does")
    return f"right on {len(cases)} fresh files, two of each element type, and payloads of the wrong size refused"
