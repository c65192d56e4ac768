# Reference solutions for the exercises of nbs/00a_data.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 00a.1
file_sizes = {
    'bytes in train-images-idx3-ubyte, decompressed': 4 + 3 * 4 + 60_000 * 28 * 28,   # magic, 3 dims, 1 byte a pixel
    'bytes in train-labels-idx1-ubyte, decompressed': 4 + 1 * 4 + 60_000,             # magic, 1 dim, 1 byte a label
    'bytes of x_train, as load_mnist returns it': 60_000 * 784 * 4,                    # float32: 4 bytes a pixel, no header
    'h.update calls when get_file verifies the training images': math.ceil((16 + 60_000 * 784) / 2**20),   # 44 full MiB, then a shorter block
}

# %% exercise 00a.2
def idx_header(raw):
    "(type_code, dims) of the IDX file whose bytes are `raw`; ValueError if it is not one."
    if len(raw) < 4: raise ValueError(f"{len(raw)} bytes: too short for the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0: raise ValueError(f"magic 0x{raw[:4].hex()}: an IDX file starts with two zero bytes")
    code, ndim = raw[2], raw[3]
    if len(raw) < 4 + 4 * ndim: raise ValueError(f"{ndim} dimensions need {4 + 4 * ndim} header bytes, there are {len(raw)}")
    dims = struct.unpack(f'>{ndim}I', raw[4:4 + 4 * ndim])   # '>': big-endian, unsigned 4-byte integers
    return code, dims

# %% exercise 00a.3
def sha256_stream(f, chunk_size=1 << 20):
    "The SHA-256 (hex) of everything the binary stream `f` holds, read `chunk_size` bytes at a time."
    h = hashlib.sha256()                         # one hash object for the whole stream
    while chunk := f.read(chunk_size):           # b'' at the end stops the loop; the last chunk may be short
        h.update(chunk)
    return h.hexdigest()

# %% exercise 00a.4
IDX_DTYPES = {0x08: torch.uint8, 0x09: torch.int8, 0x0B: torch.int16,
              0x0C: torch.int32, 0x0D: torch.float32, 0x0E: torch.float64}

def read_idx_bytes(raw):
    "The IDX file whose bytes are `raw` as a tensor of its own element type and shape."
    code, dims = idx_header(raw)
    if code not in IDX_DTYPES: raise ValueError(f"unknown IDX type code 0x{code:02x}")
    dtype = IDX_DTYPES[code]
    n, size = math.prod(dims), dtype.itemsize
    payload = raw[4 + 4 * len(dims):]
    if len(payload) != n * size:
        raise ValueError(f"header says {dims} = {n:,} items of {size} bytes, the payload has {len(payload):,} bytes")
    items = torch.frombuffer(bytearray(payload), dtype=torch.uint8).view(n, size)
    # The file is big-endian and this machine little-endian: reverse each item's bytes, then reinterpret them.
    return items.flip(1).contiguous().view(dtype).reshape(dims)
