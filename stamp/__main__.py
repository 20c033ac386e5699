from stamp.cli.entry import main

main()
