"""What the servos on an emulated bus answer to one instruction packet.

Semantics shared by both protocols: PING, READ, WRITE, SYNC_READ, SYNC_WRITE, addressed to one id or
broadcast (0xFE). As on real buses, a broadcast WRITE / SYNC_WRITE gets no reply, and a SYNC_READ gets
one status packet per servo that is on the bus, in the order the ids were asked for. Where they differ:
a Dynamixel answers a bad request with an error code (instruction, length, access), while a Feetech
stays silent or ignores what it cannot do; each honours its status-return-level register.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.emulator.servo import EmulatedServo, WriteResult
from hardware.errors import PacketError
from hardware.protocol import BROADCAST_ID, Codec, Frame, Instruction

# Dynamixel 2.0 error codes
_INSTRUCTION_ERROR = 2
_LENGTH_ERROR = 5
_ACCESS_ERROR = 7


@dataclass(frozen=True)
class Reply:
    servo: EmulatedServo
    packet: bytes


class Responder:
    def __init__(self, codec: Codec, servos: list[EmulatedServo]) -> None:
        self.codec = codec
        self.servos: dict[int, EmulatedServo] = {s.id: s for s in servos}
        if len(self.servos) != len(servos):
            raise ValueError("two emulated servos share an id")
        self._reports_errors = codec.name == "dynamixel"

    def handle(self, frame: Frame) -> list[Reply]:
        """The status packets the bus sends back for one instruction frame, in order (maybe none)."""
        try:
            instruction, params = self.codec.parse_instruction(frame)
        except PacketError:
            return []
        target = frame.id
        try:
            if instruction == Instruction.PING:
                return self._ping(target)
            if instruction == Instruction.READ:
                return self._read(target, params)
            if instruction == Instruction.WRITE:
                return self._write(target, params)
            if instruction == Instruction.SYNC_READ and target == BROADCAST_ID:
                return self._sync_read(params)
            if instruction == Instruction.SYNC_WRITE and target == BROADCAST_ID:
                self._sync_write(params)
                return []
        except PacketError:
            return self._error(target, _LENGTH_ERROR)
        return self._error(target, _INSTRUCTION_ERROR)

    def _status(self, servo: EmulatedServo, error: int = 0, data: bytes = b"") -> Reply:
        return Reply(servo, self.codec.status(servo.id, error, data))

    def _error(self, target: int, code: int) -> list[Reply]:
        servo = self.servos.get(target)
        if servo is None or not self._reports_errors:
            return []
        return [self._status(servo, code)]

    def _ping(self, target: int) -> list[Reply]:
        if target == BROADCAST_ID:
            servos = [self.servos[i] for i in sorted(self.servos)]
        else:
            servos = [self.servos[target]] if target in self.servos else []
        return [self._status(s, 0, self.codec.ping_data(s.table)) for s in servos]

    def _read_one(self, servo: EmulatedServo, address: int, size: int) -> Reply | None:
        data = servo.read(address, size)
        if data is None:  # outside the memory
            return self._status(servo, _ACCESS_ERROR) if self._reports_errors else None
        return self._status(servo, 0, data)

    def _read(self, target: int, params: bytes) -> list[Reply]:
        servo = self.servos.get(target)
        if servo is None:
            return []
        address, size = self.codec.split_read(params)
        if self.codec.name == "dynamixel" and servo.status_level < 1:
            return []
        reply = self._read_one(servo, address, size)
        return [reply] if reply else []

    def _apply_write(self, servo: EmulatedServo, address: int, data: bytes) -> WriteResult:
        old_id = servo.id
        result = servo.write(address, data)
        if servo.id != old_id:  # an ID write moves the servo to its new address on the bus
            del self.servos[old_id]
            self.servos[servo.id] = servo
        return result

    def _write(self, target: int, params: bytes) -> list[Reply]:
        address, data = self.codec.split_write(params)
        if target == BROADCAST_ID:
            for each in list(self.servos.values()):
                self._apply_write(each, address, data)
            return []
        servo = self.servos.get(target)
        if servo is None:
            return []
        result = self._apply_write(servo, address, data)
        if result is not WriteResult.OK and self._reports_errors:
            return [self._status(servo, _ACCESS_ERROR)]
        full_level = 1 if self.codec.name == "feetech" else 2
        return [self._status(servo)] if servo.status_level >= full_level else []

    def _sync_read(self, params: bytes) -> list[Reply]:
        address, size, ids = self.codec.split_sync_read(params)
        replies = []
        for id_ in ids:
            servo = self.servos.get(id_)
            reply = self._read_one(servo, address, size) if servo else None
            if reply:
                replies.append(reply)
        return replies

    def _sync_write(self, params: bytes) -> None:
        address, _, data = self.codec.split_sync_write(params)
        for id_, chunk in data.items():
            servo = self.servos.get(id_)
            if servo is not None:
                self._apply_write(servo, address, chunk)
