"The data path: local folder, cache, and downloads served on loopback (good, corrupt, 404, truncated, offline)."
import contextlib, gzip, hashlib, http.server, os, shutil, socket, stat, struct, tempfile, threading, time
from pathlib import Path

import pytest
import torch

import exp.nb_00a as data

NOBODY = 65534   # the uid `nobody` has on Linux
NAMES = b'emma\nolivia\nava'


@pytest.fixture
def names_source(monkeypatch):
    "Make `names/names.txt` a small file whose checksum we know, served from our own server."
    checks = [('sha256', hashlib.sha256(NAMES).hexdigest())]
    def use(urls): monkeypatch.setitem(data.SOURCES, 'names', {'names.txt': (urls, checks)})
    return use


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    "No local data folder, an empty cache of our own."
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / 'cache'))
    return tmp_path / 'cache'


class Handler(http.server.BaseHTTPRequestHandler):
    routes = {}   # path -> (status, body, claimed length)
    slow = {}     # path -> (body, seconds between bytes): a mirror that trickles
    hits = []
    def do_GET(self):
        Handler.hits.append(self.path)
        if self.path in self.slow: return self.trickle(*self.slow[self.path])
        status, body, length = self.routes.get(self.path, (404, b'not found', None))
        self.send_response(status)
        self.send_header('Content-Length', str(length if length is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if length is not None and length > len(body): self.close_connection = True
    def trickle(self, body, pause):
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):   # bounded: len(body) * pause seconds at most
                self.wfile.write(body[i:i + 1]); self.wfile.flush(); time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError): pass   # the client gave up, as it should
    def log_message(self, *args): pass


@pytest.fixture
def server():
    Handler.routes, Handler.slow, Handler.hits = {}, {}, []
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()
    yield Handler, f'http://127.0.0.1:{httpd.server_port}/'
    httpd.shutdown(); httpd.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_good_download_is_cached_and_reused(server, names_source, isolated):
    handler, base = server
    handler.routes['/names.txt'] = (200, NAMES, None)
    names_source([base])
    path = data.get_file('names', 'names.txt')
    assert path == isolated / 'names' / 'names.txt' and path.read_bytes() == NAMES
    assert data.load_names() == ['emma', 'olivia', 'ava']
    assert handler.hits == ['/names.txt']                        # the second call used the cache
    assert [p.name for p in path.parent.iterdir()] == ['names.txt']   # no temp file left


def test_checksum_mismatch_is_refused_and_not_saved(server, names_source, isolated):
    handler, base = server
    handler.routes['/names.txt'] = (200, b'mallory\n', None)
    names_source([base])
    with pytest.raises(data.DataError, match='checksum mismatch'):
        data.get_file('names', 'names.txt')
    assert not list((isolated / 'names').iterdir())


def test_404_then_a_good_mirror(server, names_source, isolated):
    handler, base = server
    handler.routes['/good/names.txt'] = (200, NAMES, None)
    names_source([base + 'missing/', base + 'good/'])
    assert data.get_file('names', 'names.txt').read_bytes() == NAMES
    assert handler.hits == ['/missing/names.txt', '/good/names.txt']


def test_404_everywhere_names_every_url(server, names_source, isolated):
    handler, base = server
    names_source([base + 'a/', base + 'b/'])
    with pytest.raises(data.DataError) as e:
        data.get_file('names', 'names.txt')
    assert '404' in str(e.value) and base + 'a/names.txt' in str(e.value) and base + 'b/names.txt' in str(e.value)


def test_truncated_body_is_refused(server, names_source, isolated):
    handler, base = server
    handler.routes['/names.txt'] = (200, NAMES[:5], len(NAMES))   # the server promises more than it sends
    names_source([base])
    with pytest.raises(data.DataError):
        data.get_file('names', 'names.txt')
    assert not (isolated / 'names' / 'names.txt').exists()
    assert not list((isolated / 'names').iterdir())


def test_offline_message_names_the_variable(names_source, isolated):
    names_source([f'http://127.0.0.1:{free_port()}/'])   # nothing listens there
    with pytest.raises(data.DataError) as e:
        data.get_file('names', 'names.txt')
    assert 'COURSE_DATA' in str(e.value) and 'names/names.txt' in str(e.value)


def test_local_folder_comes_first_and_is_verified(tmp_path, names_source, isolated, monkeypatch):
    names_source(['http://127.0.0.1:9/'])
    (tmp_path / 'mirror/names').mkdir(parents=True)
    (tmp_path / 'mirror/names/names.txt').write_bytes(NAMES)
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / 'mirror'))
    assert data.get_file('names', 'names.txt') == tmp_path / 'mirror/names/names.txt'
    (tmp_path / 'mirror/names/names.txt').write_bytes(b'tampered')
    with pytest.raises(data.DataError, match='fails its checksum'):
        data.get_file('names', 'names.txt')


def test_missing_from_course_data_names_the_path_and_what_came_next(tmp_path, names_source, isolated, monkeypatch):
    url = f'http://127.0.0.1:{free_port()}/names.txt'   # nothing listens there
    names_source([url.removesuffix('names.txt')])
    (tmp_path / 'mirror').mkdir()
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / 'mirror'))
    with pytest.raises(data.DataError) as e:
        data.get_file('names', 'names.txt')
    lines = str(e.value).splitlines()
    assert lines[:3] == ['could not get names/names.txt; tried, in order:',
                         f"  $COURSE_DATA: {tmp_path / 'mirror/names/names.txt'} does not exist",
                         f"  cache: {isolated / 'names/names.txt'} does not exist"]
    assert lines[3].startswith(f'  {url}: ') and 'Connection refused' in lines[3]
    assert lines[4:] == [f"Put a copy of names/names.txt at {tmp_path / 'mirror/names/names.txt'}, or unset COURSE_DATA to download it."]


@contextlib.contextmanager
def unprivileged():
    "Root reads a chmod 000 file anyway: drop to nobody's effective uid (and back) so the denial is real."
    if os.geteuid() != 0: yield; return
    os.seteuid(NOBODY)
    try: yield
    finally: os.seteuid(0)


def test_unreadable_local_file_is_reported_as_unreadable(names_source, isolated, monkeypatch):
    names_source(['http://127.0.0.1:9/'])
    mirror = Path(tempfile.mkdtemp(prefix='course-data-'))   # in /tmp, so nobody can reach it (tmp_path is root-only)
    try:
        (mirror / 'names').mkdir()
        for d in (mirror, mirror / 'names'): d.chmod(0o755)
        path = mirror / 'names/names.txt'
        path.write_bytes(NAMES); path.chmod(0)
        monkeypatch.setenv(data.DATA_ENV, str(mirror))
        with unprivileged(), pytest.raises(data.DataError) as e:
            data.get_file('names', 'names.txt')
        assert str(e.value) == (f"{path} (from $COURSE_DATA) is unreadable (PermissionError: Permission denied): "
                                "fix its permissions or unset COURSE_DATA")
    finally:
        shutil.rmtree(mirror)


@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o027, 0o640)])
def test_download_has_the_usual_permissions(server, names_source, isolated, umask, mode):
    "Not mkstemp's owner-only 0o600: 0o666 less the umask, like any file the user writes."
    handler, base = server
    handler.routes['/names.txt'] = (200, NAMES, None)
    names_source([base])
    old = os.umask(umask)
    try: path = data.get_file('names', 'names.txt')
    finally: os.umask(old)
    assert oct(stat.S_IMODE(path.stat().st_mode)) == oct(mode)


def test_a_trickling_mirror_is_abandoned_at_the_deadline(server, names_source, isolated, monkeypatch):
    "A byte every 0.5 s never trips the socket timeout; the overall deadline (1 s here) does, then the next mirror serves."
    handler, base = server
    handler.slow['/slow/names.txt'] = (NAMES, 0.5)   # 7.5 s to send it all
    handler.routes['/good/names.txt'] = (200, NAMES, None)
    names_source([base + 'slow/', base + 'good/'])
    monkeypatch.setattr(data, 'DOWNLOAD_DEADLINE', 1.0, raising=False)
    start = time.monotonic()
    assert data.get_file('names', 'names.txt').read_bytes() == NAMES
    assert time.monotonic() - start < 4
    assert handler.hits == ['/slow/names.txt', '/good/names.txt']
    assert [p.name for p in (isolated / 'names').iterdir()] == ['names.txt']   # the slow mirror's .part is gone


def test_deadline_everywhere_names_every_url_and_why(server, names_source, isolated, monkeypatch):
    handler, base = server
    handler.slow['/a/names.txt'] = handler.slow['/b/names.txt'] = (NAMES, 0.5)
    names_source([base + 'a/', base + 'b/'])
    monkeypatch.setattr(data, 'DOWNLOAD_DEADLINE', 1.0, raising=False)
    start = time.monotonic()
    with pytest.raises(data.DataError) as e:
        data.get_file('names', 'names.txt')
    assert time.monotonic() - start < 6
    lines = str(e.value).splitlines()
    for line, mirror in zip(lines[2:4], 'ab'):
        assert line.startswith(f'  {base}{mirror}/names.txt: gave up after the 1 s deadline (') and line.endswith(' of 15 bytes)')
    assert not list((isolated / 'names').iterdir())


def test_corrupt_cache_is_downloaded_again(server, names_source, isolated):
    handler, base = server
    handler.routes['/names.txt'] = (200, NAMES, None)
    names_source([base])
    (isolated / 'names').mkdir(parents=True)
    (isolated / 'names/names.txt').write_bytes(b'half a fi')
    assert data.get_file('names', 'names.txt').read_bytes() == NAMES
    assert handler.hits == ['/names.txt']


def idx_bytes(array_dims, payload):
    return bytes([0, 0, 8, len(array_dims)]) + struct.pack(f'>{len(array_dims)}I', *array_dims) + payload


def test_idx_roundtrip_and_header_checks(tmp_path):
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    path = tmp_path / 'x-idx3-ubyte.gz'
    path.write_bytes(gzip.compress(idx_bytes((3, 28, 28), images.numpy().tobytes())))
    assert torch.equal(data.read_idx(path), images)
    path.write_bytes(gzip.compress(idx_bytes((3, 28, 28), bytes(10))))
    with pytest.raises(ValueError, match='header says'):
        data.read_idx(path)


@pytest.mark.parametrize('raw, ndim, message', [
    (bytes([0, 0, 8]), 3, "{path}: too short to be an IDX file (3 bytes; the magic number alone is 4)"),
    (b'PK\x03\x04not an idx file', 3,
     "{path}: not an unsigned-byte IDX file (magic 0x504b0304, expected 0x000008 then the number of dimensions)"),
    (idx_bytes((4, 196), bytes(784)), 3, "{path}: IDX file has 2 dimensions (magic 0x00000802), expected 3"),
    (idx_bytes((2, 28, 28), b'')[:12], 3,
     "{path}: IDX header truncated: 3 dimensions need 16 header bytes, the file has 12"),
    (idx_bytes((2, 28, 28), bytes(100)), 3,
     "{path}: IDX data is the wrong size: header says (2, 28, 28) = 1,568 bytes, the file has 100"),
    (idx_bytes((2,), bytes(3)), None, "{path}: IDX data is the wrong size: header says (2,) = 2 bytes, the file has 3"),
], ids=['too-short', 'wrong-magic', 'wrong-ndim', 'truncated-header', 'truncated-data', 'extra-data'])
def test_bad_idx_is_refused_with_one_clear_line(tmp_path, raw, ndim, message):
    path = tmp_path / 'bad-idx3-ubyte'
    path.write_bytes(raw)
    with pytest.raises(ValueError) as e:
        data.read_idx(path, ndim=ndim)
    assert str(e.value) == message.format(path=path)


def test_damaged_gzip_idx_is_refused(tmp_path):
    path = tmp_path / 'x-idx1-ubyte.gz'
    path.write_bytes(gzip.compress(idx_bytes((100,), bytes(100)))[:-12])   # cut inside the compressed stream
    with pytest.raises(ValueError) as e:
        data.read_idx(path, ndim=1)
    assert str(e.value) == f"{path}: damaged gzip data (Compressed file ended before the end-of-stream marker was reached)"


def serve_digits(handler, base, files, monkeypatch):
    "Serve gzipped IDX `files` as the MNIST digits, with their MD5s as the checks."
    table = {}
    for name, raw in files.items():
        gz = gzip.compress(raw, mtime=0)
        handler.routes['/' + name] = (200, gz, None)
        table[name] = ([base], [('md5', hashlib.md5(gz).hexdigest())])
    monkeypatch.setitem(data.SOURCES, 'mnist', table)


DIGITS = {'train-images-idx3-ubyte.gz': idx_bytes((2, 28, 28), bytes(range(256)) * 6 + bytes(32)),
          'train-labels-idx1-ubyte.gz': idx_bytes((2,), bytes([3, 7])),
          't10k-images-idx3-ubyte.gz': idx_bytes((1, 28, 28), bytes([255]) * 784),
          't10k-labels-idx1-ubyte.gz': idx_bytes((1,), bytes([9]))}


def test_digits_load_through_the_same_path(server, isolated, monkeypatch):
    "MNIST digits have no local copy: serve tiny IDX files and let load_mnist('digits') fetch and parse them."
    serve_digits(*server, DIGITS, monkeypatch)
    x, y, xt, yt = data.load_mnist('digits')
    assert x.shape == (2, 784) and x.dtype == torch.float32 and float(x[0, 1]) == pytest.approx(1 / 255)
    assert y.tolist() == [3, 7] and yt.tolist() == [9] and float(xt.min()) == 1.0


def test_load_mnist_checks_the_number_of_dimensions(server, isolated, monkeypatch):
    "784 images stored as (2, 784) would reshape silently; load_mnist asks for 3 dimensions."
    serve_digits(*server, {**DIGITS, 'train-images-idx3-ubyte.gz': idx_bytes((2, 784), bytes(2 * 784))}, monkeypatch)
    with pytest.raises(ValueError, match=r'train-images-idx3-ubyte.gz: IDX file has 2 dimensions \(magic 0x00000802\), expected 3$'):
        data.load_mnist('digits')


@pytest.mark.skipif(not os.environ.get('COURSE_DATA'), reason='needs the local data mirror (COURSE_DATA)')
def test_real_mirror_verifies():
    for dataset, files in data.SOURCES.items():
        if dataset == 'mnist': continue
        for fname in files: assert data.get_file(dataset, fname).exists()
