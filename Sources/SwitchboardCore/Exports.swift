// The wire types (JSON, positions, commands, frames, error and close codes) are the
// protocol module's; everything that uses the core uses them too.
@_exported import SwitchboardProtocol
