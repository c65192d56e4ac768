"The data path: local folder, cache, and downloads served on loopback (good, corrupt, 404, truncated, offline)."
import gzip, hashlib, http.server, os, socket, struct, threading
from pathlib import Path

import pytest
import torch

import exp.nb_00a as data

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
    hits = []
    def do_GET(self):
        Handler.hits.append(self.path)
        status, body, length = self.routes.get(self.path, (404, b'not found', None))
        self.send_response(status)
        self.send_header('Content-Length', str(length if length is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if length is not None and length > len(body): self.close_connection = True
    def log_message(self, *args): pass


@pytest.fixture
def server():
    Handler.routes, Handler.hits = {}, []
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield Handler, f'http://127.0.0.1:{httpd.server_port}/'
    httpd.shutdown()


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
    with pytest.raises(data.DataError, match='header says'):
        data.read_idx(path)
    bad = tmp_path / 'bad-idx'
    bad.write_bytes(b'\x1f\x8b\x08\x00junk')
    with pytest.raises(data.DataError, match='not an unsigned-byte IDX'):
        data.read_idx(bad)


def test_digits_load_through_the_same_path(server, isolated, monkeypatch):
    "MNIST digits have no local copy: serve tiny IDX files and let load_mnist('digits') fetch and parse them."
    handler, base = server
    files = {'train-images-idx3-ubyte.gz': idx_bytes((2, 28, 28), bytes(range(256)) * 6 + bytes(32)),
             'train-labels-idx1-ubyte.gz': idx_bytes((2,), bytes([3, 7])),
             't10k-images-idx3-ubyte.gz': idx_bytes((1, 28, 28), bytes([255]) * 784),
             't10k-labels-idx1-ubyte.gz': idx_bytes((1,), bytes([9]))}
    table = {}
    for name, raw in files.items():
        gz = gzip.compress(raw, mtime=0)
        handler.routes['/' + name] = (200, gz, None)
        table[name] = ([base], [('md5', hashlib.md5(gz).hexdigest())])
    monkeypatch.setitem(data.SOURCES, 'mnist', table)
    x, y, xt, yt = data.load_mnist('digits')
    assert x.shape == (2, 784) and x.dtype == torch.float32 and float(x[0, 1]) == pytest.approx(1 / 255)
    assert y.tolist() == [3, 7] and yt.tolist() == [9] and float(xt.min()) == 1.0


@pytest.mark.skipif(not os.environ.get('COURSE_DATA'), reason='needs the local data mirror (COURSE_DATA)')
def test_real_mirror_verifies():
    for dataset, files in data.SOURCES.items():
        if dataset == 'mnist': continue
        for fname in files: assert data.get_file(dataset, fname).exists()
