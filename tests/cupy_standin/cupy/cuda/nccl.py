"""``cupy.cuda.nccl``: an all-reduce over MPI on the arrays behind device pointers.

As NCCL does, a communicator refuses two ranks on one device.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from .. import _state

available = os.environ.get("GPUBP_STANDIN_NCCL", "1") == "1"

NCCL_FLOAT32, NCCL_FLOAT64 = 7, 8
NCCL_SUM = 0
_DTYPES = {NCCL_FLOAT32: np.float32, NCCL_FLOAT64: np.float64}


class NcclError(RuntimeError):
    pass


def get_unique_id():
    return tuple(int(b) for b in os.urandom(16))


class NcclCommunicator:
    def __init__(self, ndev, commId, rank):
        from mpi4py import MPI

        self._comm = MPI.COMM_WORLD
        if self._comm.Get_size() != ndev or self._comm.Get_rank() != rank:
            raise NcclError("NCCL_ERROR_INVALID_ARGUMENT: ranks do not match the MPI world")
        devices = self._comm.allgather(_state.CURRENT_DEVICE[0])
        if len(set(devices)) != len(devices):
            raise NcclError("NCCL_ERROR_INVALID_USAGE: invalid usage (Duplicate GPU detected)")
        self.created = True

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        from mpi4py import MPI

        if op != NCCL_SUM:
            raise NotImplementedError("the stand-in sums only")
        kind = np.ctypeslib.as_ctypes_type(_DTYPES[datatype])
        send = np.ctypeslib.as_array(ctypes.cast(sendbuf, ctypes.POINTER(kind)), (count,))
        recv = np.ctypeslib.as_array(ctypes.cast(recvbuf, ctypes.POINTER(kind)), (count,))
        _state.COUNTS.launches += 1
        if sendbuf == recvbuf:
            self._comm.Allreduce(MPI.IN_PLACE, recv, op=MPI.SUM)
        else:
            self._comm.Allreduce(send, recv, op=MPI.SUM)

    def destroy(self):
        self.created = False
