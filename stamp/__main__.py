from stamp.cli import main

main()
