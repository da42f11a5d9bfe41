"""Control tables of the servos we drive, and the servo layout of the arms, as data.

Addresses and sizes are the vendors' (Feetech STS series manual, ROBOTIS e-Manual for the X series);
register names follow LeRobot's so its configs and ours read alike. Defaults are factory values where
the manuals give them and sensible values otherwise (voltages and temperatures are what a healthy servo
on its usual supply reports); the emulator starts from them.

Flags in the rows: `ro` read-only, `eeprom` in the EEPROM area, `sm<N>` sign-magnitude with the sign in
bit N (Feetech), `signed` two's complement (Dynamixel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from hardware.protocol import ControlTable, Encoding, Register

Row = tuple[str, int, int, str, int]  # name, address, size (bytes), flags, default


def _register(row: Row) -> Register:
    name, address, size, flags, default = row
    words = flags.split()
    sign_bit = next((int(w[2:]) for w in words if w.startswith("sm")), None)
    encoding = (
        Encoding.SIGN_MAGNITUDE
        if sign_bit is not None
        else Encoding.TWOS_COMPLEMENT
        if "signed" in words
        else Encoding.UNSIGNED
    )
    return Register(name, address, size, "ro" not in words, "eeprom" in words, encoding, sign_bit, default)


def _table(
    model: str, number: int, protocol: str, rows: list[Row], memory: int, overrides: Mapping[str, int]
) -> ControlTable:
    registers = {row[0]: _register(row) for row in rows}
    unknown = set(overrides) - set(registers)
    assert not unknown, f"{model}: defaults for unknown registers {unknown}"
    for name, value in overrides.items():
        registers[name] = replace(registers[name], default=value)
    registers["Model_Number"] = replace(registers["Model_Number"], default=number)
    return ControlTable(model, number, protocol, MappingProxyType(registers), memory)


# Feetech STS series (STS3215): EEPROM below address 40, SRAM from 40.
STS_ROWS: list[Row] = [
    ("Firmware_Major_Version", 0, 1, "ro eeprom", 3),
    ("Firmware_Minor_Version", 1, 1, "ro eeprom", 10),
    ("Model_Number", 3, 2, "ro eeprom", 0),
    ("ID", 5, 1, "eeprom", 1),
    ("Baud_Rate", 6, 1, "eeprom", 0),  # 0: 1 Mbps
    ("Return_Delay_Time", 7, 1, "eeprom", 250),  # 2 µs units: 500 µs
    ("Response_Status_Level", 8, 1, "eeprom", 1),  # 0: reply to READ and PING only
    ("Min_Position_Limit", 9, 2, "eeprom", 0),
    ("Max_Position_Limit", 11, 2, "eeprom", 4095),
    ("Max_Temperature_Limit", 13, 1, "eeprom", 70),  # °C
    ("Max_Voltage_Limit", 14, 1, "eeprom", 80),  # 0.1 V
    ("Min_Voltage_Limit", 15, 1, "eeprom", 40),
    ("Max_Torque_Limit", 16, 2, "eeprom", 1000),  # 0.1 %
    ("Phase", 18, 1, "eeprom", 12),
    ("Unloading_Condition", 19, 1, "eeprom", 44),
    ("LED_Alarm_Condition", 20, 1, "eeprom", 47),
    ("P_Coefficient", 21, 1, "eeprom", 32),
    ("D_Coefficient", 22, 1, "eeprom", 32),
    ("I_Coefficient", 23, 1, "eeprom", 0),
    ("Minimum_Startup_Force", 24, 2, "eeprom", 16),
    ("CW_Dead_Zone", 26, 1, "eeprom", 1),
    ("CCW_Dead_Zone", 27, 1, "eeprom", 1),
    ("Protection_Current", 28, 2, "eeprom", 500),
    ("Angular_Resolution", 30, 1, "eeprom", 1),
    ("Homing_Offset", 31, 2, "eeprom sm11", 0),
    ("Operating_Mode", 33, 1, "eeprom", 0),  # 0: position
    ("Protective_Torque", 34, 1, "eeprom", 20),
    ("Protection_Time", 35, 1, "eeprom", 200),
    ("Overload_Torque", 36, 1, "eeprom", 80),
    ("Velocity_closed_loop_P_proportional_coefficient", 37, 1, "eeprom", 10),
    ("Over_Current_Protection_Time", 38, 1, "eeprom", 200),
    ("Velocity_closed_loop_I_integral_coefficient", 39, 1, "eeprom", 200),
    ("Torque_Enable", 40, 1, "", 0),
    ("Acceleration", 41, 1, "", 0),
    ("Goal_Position", 42, 2, "sm15", 0),
    ("Goal_Time", 44, 2, "", 0),
    ("Goal_Velocity", 46, 2, "sm15", 0),
    ("Torque_Limit", 48, 2, "", 1000),
    ("Lock", 55, 1, "", 1),  # EEPROM write protection
    ("Present_Position", 56, 2, "ro sm15", 0),
    ("Present_Velocity", 58, 2, "ro sm15", 0),  # steps/s
    ("Present_Load", 60, 2, "ro sm10", 0),
    ("Present_Voltage", 62, 1, "ro", 74),
    ("Present_Temperature", 63, 1, "ro", 25),
    ("Status", 65, 1, "ro", 0),
    ("Moving", 66, 1, "ro", 0),
    ("Present_Current", 69, 2, "ro", 0),
]

# Dynamixel X series (XL330, XL430): EEPROM below address 64. The two share addresses; a register one
# model lacks (the XL430 has no current control) reads as its default here.
X_ROWS: list[Row] = [
    ("Model_Number", 0, 2, "ro eeprom", 0),
    ("Model_Information", 2, 4, "ro eeprom", 0),
    ("Firmware_Version", 6, 1, "ro eeprom", 46),
    ("ID", 7, 1, "eeprom", 1),
    ("Baud_Rate", 8, 1, "eeprom", 1),  # 1: 57,600 bps (factory); 3: 1 Mbps
    ("Return_Delay_Time", 9, 1, "eeprom", 250),  # 2 µs units
    ("Drive_Mode", 10, 1, "eeprom", 0),
    ("Operating_Mode", 11, 1, "eeprom", 3),  # 3: position, 4: extended position, 5: current-based position
    ("Secondary_ID", 12, 1, "eeprom", 255),
    ("Protocol_Type", 13, 1, "eeprom", 2),
    ("Homing_Offset", 20, 4, "eeprom signed", 0),
    ("Moving_Threshold", 24, 4, "eeprom", 10),
    ("Temperature_Limit", 31, 1, "eeprom", 72),
    ("Max_Voltage_Limit", 32, 2, "eeprom", 140),
    ("Min_Voltage_Limit", 34, 2, "eeprom", 60),
    ("PWM_Limit", 36, 2, "eeprom", 885),
    ("Current_Limit", 38, 2, "eeprom", 0),
    ("Acceleration_Limit", 40, 4, "eeprom", 32767),
    ("Velocity_Limit", 44, 4, "eeprom", 265),
    ("Max_Position_Limit", 48, 4, "eeprom", 4095),
    ("Min_Position_Limit", 52, 4, "eeprom", 0),
    ("Shutdown", 63, 1, "eeprom", 52),
    ("Torque_Enable", 64, 1, "", 0),
    ("LED", 65, 1, "", 0),
    ("Status_Return_Level", 68, 1, "", 2),  # 2: reply to everything
    ("Registered_Instruction", 69, 1, "ro", 0),
    ("Hardware_Error_Status", 70, 1, "ro", 0),
    ("Velocity_I_Gain", 76, 2, "", 1000),
    ("Velocity_P_Gain", 78, 2, "", 100),
    ("Position_D_Gain", 80, 2, "", 0),
    ("Position_I_Gain", 82, 2, "", 0),
    ("Position_P_Gain", 84, 2, "", 640),
    ("Feedforward_2nd_Gain", 88, 2, "", 0),
    ("Feedforward_1st_Gain", 90, 2, "", 0),
    ("Bus_Watchdog", 98, 1, "", 0),
    ("Goal_PWM", 100, 2, "signed", 885),
    ("Goal_Current", 102, 2, "signed", 0),
    ("Goal_Velocity", 104, 4, "signed", 0),
    ("Profile_Acceleration", 108, 4, "", 0),
    ("Profile_Velocity", 112, 4, "", 0),
    ("Goal_Position", 116, 4, "signed", 0),
    ("Realtime_Tick", 120, 2, "ro", 0),
    ("Moving", 122, 1, "ro", 0),
    ("Moving_Status", 123, 1, "ro", 0),
    ("Present_PWM", 124, 2, "ro signed", 0),
    ("Present_Current", 126, 2, "ro signed", 0),
    ("Present_Velocity", 128, 4, "ro signed", 0),  # 0.229 rpm
    ("Present_Position", 132, 4, "ro signed", 0),
    ("Velocity_Trajectory", 136, 4, "ro signed", 0),
    ("Position_Trajectory", 140, 4, "ro signed", 0),
    ("Present_Input_Voltage", 144, 2, "ro", 120),  # 0.1 V
    ("Present_Temperature", 146, 1, "ro", 25),
]

_XL330 = {
    "Temperature_Limit": 70,
    "Max_Voltage_Limit": 70,
    "Min_Voltage_Limit": 35,
    "Current_Limit": 1750,
    "Velocity_Limit": 445,
    "Position_P_Gain": 400,
    "Goal_Current": 1750,
    "Present_Input_Voltage": 50,
}

MODELS: Mapping[str, ControlTable] = MappingProxyType(
    {
        "sts3215": _table("sts3215", 777, "feetech", STS_ROWS, 256, {}),
        "xl430-w250": _table("xl430-w250", 1060, "dynamixel", X_ROWS, 256, {}),
        "xl330-m288": _table("xl330-m288", 1200, "dynamixel", X_ROWS, 256, _XL330),
        "xl330-m077": _table("xl330-m077", 1190, "dynamixel", X_ROWS, 256, _XL330),
    }
)


def model_table(model: str, protocol: str | None = None) -> ControlTable:
    """The control table of a servo model; a clear error for an unknown one or one of another protocol."""
    from hardware.errors import RegisterError

    table = MODELS.get(model)
    if table is None:
        raise RegisterError(f"unknown servo model {model!r}; known: {', '.join(sorted(MODELS))}")
    if protocol is not None and table.protocol != protocol:
        raise RegisterError(f"{model} is a {table.protocol} servo, not {protocol}")
    return table
