from controller.demo import main

main()
