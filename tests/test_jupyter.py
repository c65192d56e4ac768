"""JupyterLab, the course's interface: a server on loopback lists nbs/ and runs a kernel that imports exp.

The server gets its own token and throwaway home, config, data and runtime folders, so nothing of the
user's is read or written; every wait is bounded and every process it starts is gone at the end."""
import json, os, re, secrets, signal, socket, subprocess, sys, time, urllib.request, uuid
from datetime import datetime, timezone

import psutil, pytest, websocket

from conftest import ROOT

START_S = 60   # the server's start-up (a cold JupyterLab takes a few seconds)
STEP_S = 30    # any one REST call, kernel start, execution or shutdown
NUMBERED_NB = re.compile(r'\d\d[a-z]?_\w+\.ipynb')
ANSI = re.compile(r'\x1b\[[0-9;]*m')   # IPython colours its tracebacks
# No proxy may see the token: the URL opener and the websocket both talk to loopback directly.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Server:
    def __init__(self, port, token): self.port, self.token = port, token

    def api(self, method, path, body=None):
        "Call the server; return (status, body: decoded JSON, text, or None when empty)."
        req = urllib.request.Request(f'http://127.0.0.1:{self.port}{path}', method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={'Authorization': f'token {self.token}', 'Content-Type': 'application/json'})
        with LOOPBACK.open(req, timeout=STEP_S) as r:
            data = r.read()
            if not data: return r.status, None
            return r.status, json.loads(data) if r.headers.get_content_type() == 'application/json' else data.decode()

    def channels(self, kernel_id):
        return websocket.create_connection(f'ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels',
                                           header=[f'Authorization: token {self.token}'],
                                           timeout=STEP_S, http_no_proxy=['127.0.0.1'])


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def private_env(tmp):
    "os.environ, minus anything that points Jupyter, IPython or a proxy at the user's files or network."
    drop = re.compile(r'JUPYTER_.*|IPYTHONDIR|XDG_.*|.*_proxy', re.I)
    env = {k: v for k, v in os.environ.items() if not drop.fullmatch(k)}
    dirs = {k: tmp / k.lower() for k in ['HOME', 'JUPYTER_CONFIG_DIR', 'JUPYTER_DATA_DIR', 'JUPYTER_RUNTIME_DIR',
                                        'IPYTHONDIR', 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME']}
    for d in dirs.values(): d.mkdir()
    return env | {k: str(d) for k, d in dirs.items()}


def wait_until_up(server, proc, log):
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f'Jupyter server exited with {proc.returncode}:\n{log.read_text()[-3000:]}'
        try: return server.api('GET', '/api/status')
        except OSError: time.sleep(0.2)   # not listening yet
    raise AssertionError(f'Jupyter server not up within {START_S} s:\n{log.read_text()[-3000:]}')


def stop(server, proc):
    "Ask the server to shut down (it stops its kernels); True if it exited within STEP_S."
    try: server.api('POST', '/api/shutdown')
    except OSError: pass   # already gone, or dropped the connection while stopping
    try: proc.wait(STEP_S); return True
    except subprocess.TimeoutExpired: return False


def processes_under(folder):
    "Processes whose command line names a path in folder: the kernels' connection files live in its runtime dir."
    found = []
    for p in psutil.process_iter(['cmdline']):
        if any(str(folder) in a for a in p.info['cmdline'] or []): found.append(p)
    return found


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    "JupyterLab serving the repo on 127.0.0.1, a random free port and a random token."
    tmp_path = tmp_path_factory.mktemp('jupyter')
    port, token, log = free_port(), secrets.token_hex(24), tmp_path / 'server.log'
    env = private_env(tmp_path) | {'JUPYTER_TOKEN': token}   # env, not argv: `ps` would show argv
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           '--port-retries=0', f'--ServerApp.root_dir={ROOT}', '--allow-root']   # containers run as root
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)   # its own process group, killed as one below
    s = Server(port, token)
    stopped = False
    try:
        wait_until_up(s, proc, log)
        yield s
        stopped = stop(s, proc)
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STEP_S)
        # Kernels run in sessions of their own, out of the server's group: find them by their runtime dir.
        left = processes_under(tmp_path)
        for p in left:
            try: p.kill()
            except psutil.NoSuchProcess: pass
    assert stopped, f'Jupyter server did not stop within {STEP_S} s of POST /api/shutdown'
    assert not left, f'processes left running after the server stopped: {[p.info["cmdline"] for p in left]}'


def execute(ws, code):
    "Run code in the kernel behind ws; return (execute_reply content, stdout, error tracebacks)."
    msg_id = uuid.uuid4().hex
    header = {'msg_id': msg_id, 'msg_type': 'execute_request', 'session': uuid.uuid4().hex, 'username': 'test',
              'version': '5.3', 'date': datetime.now(timezone.utc).isoformat()}
    content = {'code': code, 'silent': False, 'store_history': False, 'user_expressions': {},
               'allow_stdin': False, 'stop_on_error': True}
    ws.send(json.dumps({'header': header, 'parent_header': {}, 'metadata': {}, 'content': content,
                        'channel': 'shell', 'buffers': []}))
    reply, idle, stdout, errors = None, False, '', []
    deadline = time.monotonic() + STEP_S
    # The reply (shell) and the output (iopub) come on different channels: wait for both the reply
    # and the kernel going idle, which it does after the last output of this request.
    while reply is None or not idle:
        left = deadline - time.monotonic()
        assert left > 0, f'no execute_reply and idle status within {STEP_S} s; stdout so far: {stdout!r}'
        ws.settimeout(left)
        try: msg = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException: continue   # the deadline check above reports it
        if msg['parent_header'].get('msg_id') != msg_id: continue
        kind, c = msg['msg_type'], msg['content']
        if kind == 'stream' and c['name'] == 'stdout': stdout += c['text']
        elif kind == 'error': errors.append(ANSI.sub('', '\n'.join(c['traceback'])))
        elif kind == 'execute_reply': reply = c
        elif kind == 'status': idle = c['execution_state'] == 'idle'
    return reply, stdout, errors


def test_jupyterlab_serves_the_course(server):
    status, page = server.api('GET', '/lab')
    assert status == 200 and '<title>JupyterLab</title>' in page
    _, listing = server.api('GET', '/api/contents/nbs')
    served = {f['name'] for f in listing['content'] if f['type'] == 'notebook'}
    on_disk = {p.name for p in (ROOT / 'nbs').glob('*.ipynb')}
    assert served == on_disk and '00_exports.ipynb' in served
    assert all(NUMBERED_NB.fullmatch(n) for n in served), sorted(served)


def test_kernel_imports_exp(server):
    # path=nbs starts the kernel where a notebook's kernel runs: exp must come from the install, not the cwd.
    status, kernel = server.api('POST', '/api/kernels', {'name': 'python3', 'path': 'nbs'})
    assert status == 201
    ws = server.channels(kernel['id'])
    try:
        reply, stdout, errors = execute(ws, 'import exp.nb_00; print(exp.nb_00.near(1, 1))')
    finally:
        ws.close()
    assert reply['status'] == 'ok', '\n'.join(errors)
    assert stdout == 'True\n'
    status, _ = server.api('DELETE', f'/api/kernels/{kernel["id"]}')
    assert status == 204
    _, kernels = server.api('GET', '/api/kernels')
    assert kernels == []
