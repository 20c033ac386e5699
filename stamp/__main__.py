from stamp.main import main

main()
