from solstice.cli import main

main()
