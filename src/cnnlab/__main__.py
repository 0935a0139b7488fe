from cnnlab.cli import command_line

command_line()
