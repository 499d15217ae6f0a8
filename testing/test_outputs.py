"""outputs: tool output files, complete and together or not at all."""
import io
import os
import stat
import tarfile
import threading

import pytest

from containerregistry.client.v2_2 import outputs as output_files


def _write(path: str, data: bytes) -> None:
    with output_files.Outputs() as outputs:
        with outputs.open(path) as f:
            f.write(data)
        outputs.commit()


class _Reader(threading.Thread):
    """Reads a FIFO to its end, as the process downstream of a tool would."""

    def __init__(self, path: str):
        super().__init__(daemon=True)
        self.path = path
        self.data = None
        self.start()

    def run(self) -> None:
        with open(self.path, 'rb') as f:
            self.data = f.read()


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)
    reader = _Reader(fifo)
    _write(fifo, b'through the pipe')
    reader.join(10)
    assert reader.data == b'through the pipe'
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ['fifo']


def test_a_tar_can_stream_into_a_fifo(tmp_path):
    """tarfile asks for the position; a pipe has none to give."""
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)
    reader = _Reader(fifo)
    with output_files.Outputs() as outputs:
        with outputs.open(fifo) as f:
            with tarfile.open(fileobj=f, mode='w') as tar:
                info = tarfile.TarInfo('a')
                info.size = 3
                tar.addfile(info, io.BytesIO(b'abc'))
        outputs.commit()
    reader.join(10)
    with tarfile.open(fileobj=io.BytesIO(reader.data)) as tar:
        assert tar.extractfile('a').read() == b'abc'


def test_a_descriptor_path_is_written_through(tmp_path):
    """/proc/self/fd/N (what /dev/stdout is) writes to the open file."""
    path = tmp_path / 'opened'
    path.write_bytes(b'old')
    inode = os.stat(path).st_ino
    with open(path, 'rb+') as held:
        _write('/proc/self/fd/%d' % held.fileno(), b'new contents')
    assert path.read_bytes() == b'new contents'
    assert os.stat(path).st_ino == inode
    assert os.listdir(tmp_path) == ['opened']


@pytest.mark.parametrize('existing', [True, False], ids=['existing', 'dangling'])
def test_a_symlink_is_followed_and_kept(tmp_path, existing):
    (tmp_path / 'real').mkdir()
    (tmp_path / 'links').mkdir()
    target = tmp_path / 'real' / 'out'
    if existing:
        target.write_bytes(b'old')
    link = tmp_path / 'links' / 'out'
    os.symlink('../real/out', link)
    _write(str(link), b'new')
    assert os.readlink(link) == '../real/out'
    assert target.read_bytes() == b'new'
    assert stat.S_ISREG(os.lstat(target).st_mode)
    assert os.listdir(tmp_path / 'real') == ['out']
    assert os.listdir(tmp_path / 'links') == ['out']


def test_a_regular_file_is_replaced(tmp_path):
    path = tmp_path / 'out'
    path.write_bytes(b'old')
    inode = os.stat(path).st_ino
    _write(str(path), b'new')
    assert path.read_bytes() == b'new'
    assert os.stat(path).st_ino != inode
    assert os.listdir(tmp_path) == ['out']


@pytest.mark.parametrize('make', ['directory', 'empty', 'no parent'])
def test_unusable_paths_name_the_path_given(tmp_path, make):
    path, reason = {
        'directory': (str(tmp_path / 'dir'), 'Is a directory'),
        'empty': ('', 'no file name given'),
        'no parent': (str(tmp_path / 'no' / 'out'), 'No such file or directory'),
    }[make]
    (tmp_path / 'dir').mkdir()
    for attempt in (output_files.Outputs.check,
                    lambda p: output_files.Outputs().open(p)):
        with pytest.raises(output_files.WriteError) as caught:
            attempt(path)
        assert str(caught.value) == 'cannot write %s: %s' % (path or "''",
                                                             reason)
    assert os.listdir(tmp_path) == ['dir']


@pytest.mark.parametrize('first_existed', [True, False], ids=['old', 'new'])
def test_a_failed_rename_undoes_the_others(tmp_path, first_existed):
    """The second target became a directory after its file was written:
    the first target is left as it was."""
    first, second = tmp_path / 'first', tmp_path / 'second'
    if first_existed:
        first.write_bytes(b'old first')
    outputs = output_files.Outputs()
    for path in (first, second):
        with outputs.open(str(path)) as f:
            f.write(b'new')
    second.mkdir()
    with pytest.raises(output_files.WriteError) as caught:
        outputs.commit()
    outputs.discard()
    assert str(caught.value) == 'cannot write %s: Is a directory' % second
    if first_existed:
        assert first.read_bytes() == b'old first'
    assert sorted(os.listdir(tmp_path)) == (['first'] if first_existed else []) + ['second']


def test_outputs_appear_together(tmp_path):
    outputs = output_files.Outputs()
    for name in ('a', 'b'):
        with outputs.open(str(tmp_path / name)) as f:
            f.write(name.encode())
    assert len(os.listdir(tmp_path)) == 2
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists()
    outputs.commit()
    assert sorted(os.listdir(tmp_path)) == ['a', 'b']
    assert (tmp_path / 'a').read_bytes() == b'a'
    assert (tmp_path / 'b').read_bytes() == b'b'
