"""One module per subcommand; each has register(subparsers) and run(args) -> exit code.

To add a command, add its module name to COMMANDS (order = order in --help).
"""

COMMANDS = ["run", "sweep", "doctor", "report", "compare", "merge", "bisect", "scale", "suppressions", "audit"]
