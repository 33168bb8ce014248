from brainstream.cli import main

main()
