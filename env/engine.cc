#include "env/engine.h"
