"""Write a ``.keras`` file whose weights are written once, in place in the archive.

A ``.keras`` file is a zip archive of ``metadata.json``, ``config.json``, the
layers' assets and ``model.weights.h5``, the weights as an HDF5 file, stored
uncompressed.  Keras builds that HDF5 file elsewhere first (in memory, or in a
staged file on disk when memory is short) and then copies it into the archive:
for USE-m3 a 276 MB file written twice and read once, 1 s of a ``train`` run.

Here the HDF5 file is created at the archive's path with a *user block*, a
reserved region that the HDF5 library skips, as long as a zip entry's local
header: the header is written into that region afterwards, so the HDF5 data
is the entry's bytes where they lie.  The other entries and the zip's
central directory follow the HDF5 data.  The HDF5 library reads a file's
addresses relative to where it finds the superblock, so the entry that Keras
reads out (``zipfile`` gives it the bytes after the local header, which start
with the superblock) is a valid HDF5 file without a user block, and the
archive is an ordinary zip file (``zipfile.testzip``, ``unzip -t``).

The layers' states are written by Keras' own saving code (the same walk,
file names and JSON as ``model.save``); only where the weights file lies in
the archive differs.
"""

import os
import struct
import time
import zipfile
import zlib

import h5py
from keras.src.saving import saving_lib

USER_BLOCK = 512  # bytes; HDF5 accepts powers of two from 512
_PADDING_ID = 0xD935  # extra-field id that zipalign uses for padding (readers skip unknown ids)
_CRC_CHUNK = 16 * 1024 * 1024


class _WeightsAtArchivePath(saving_lib.H5IOStore):
    """Keras' HDF5 weights store, creating its file with a user block of :data:`USER_BLOCK`."""

    def _get_h5_file(self, path_or_io, mode=None):
        return h5py.File(path_or_io, mode="w", userblock_size=USER_BLOCK)


def write_keras_archive(model, path):
    """Save ``model`` as the ``.keras`` file ``path`` (what ``model.save(path)`` writes)."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"a Keras archive's name ends in .keras (got {path})")
    config_json, metadata_json = saving_lib._serialize_model_as_json(model)
    weights = _WeightsAtArchivePath(path, mode="w")
    assets = saving_lib.DiskIOStore(saving_lib._ASSETS_DIRNAME, mode="w")  # a temporary folder
    try:
        try:
            saving_lib._save_state(model, weights_store=weights, assets_store=assets,
                                   inner_path="", visited_saveables=set())
        finally:
            weights.close()
        size = os.path.getsize(path) - USER_BLOCK
        entry = zipfile.ZipInfo(saving_lib._VARS_FNAME_H5, time.localtime()[:6])
        entry.compress_type = zipfile.ZIP_STORED
        entry.file_size = entry.compress_size = size
        entry.CRC = _crc32(path, USER_BLOCK, size)
        entry.external_attr = 0o600 << 16  # -rw------- (as zipfile records a staged file's)
        entry.header_offset = 0
        with open(path, "r+b") as f:
            f.write(_local_header(entry, USER_BLOCK))
            f.seek(0, os.SEEK_END)
            with zipfile.ZipFile(f, "w") as archive:  # appends, at the end of the weights
                archive.writestr(saving_lib._METADATA_FILENAME, metadata_json)
                archive.writestr(saving_lib._CONFIG_FILENAME, config_json)
                if os.listdir(assets.working_dir):
                    saving_lib._write_to_zip_recursively(archive, assets.working_dir,
                                                         saving_lib._ASSETS_DIRNAME)
                archive.filelist.append(entry)  # listed last, as Keras lists it
                archive.NameToInfo[entry.filename] = entry
    finally:
        assets.close()


def _local_header(entry, length):
    """``entry``'s local file header padded to ``length`` bytes with an extra field."""
    bare = entry.FileHeader()
    pad = length - len(bare)
    if pad < 4:
        raise ValueError(f"a local header of {len(bare)} bytes does not fit {length} bytes")
    entry.extra = struct.pack("<HH", _PADDING_ID, pad - 4) + bytes(pad - 4)
    try:
        header = entry.FileHeader()
    finally:
        entry.extra = b""  # the central directory carries no padding
    assert len(header) == length
    return header


def _crc32(path, offset, size):
    crc = 0
    with open(path, "rb") as f:
        f.seek(offset)
        while size > 0:
            chunk = f.read(min(_CRC_CHUNK, size))
            if not chunk:
                raise OSError(f"{path}: the weights file ended early")
            crc = zlib.crc32(chunk, crc)
            size -= len(chunk)
    return crc
